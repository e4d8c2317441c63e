"""No silent minutes: a component that says nothing gets a line every
HEARTBEAT_SECONDS while it runs (flowers.progress.heartbeat)."""

import time

from flowers import progress


def test_a_silent_component_gets_a_line_every_interval(monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.5)
    lines: list[str] = []
    start = time.monotonic()
    with progress.heartbeat("Evaluator", start, lines.append):
        time.sleep(1.4)
    assert 1 <= len(lines) <= 3, lines
    assert all(line.startswith("  Evaluator still running (") for line in lines)
    count = len(lines)
    time.sleep(0.8)
    assert len(lines) == count  # stopped with the component
