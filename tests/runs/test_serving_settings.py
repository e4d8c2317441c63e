"""`flowers serve` settings: TF Serving's version policies, refused with the rule when wrong."""

from __future__ import annotations

import pytest

from flowers import outcome
from flowers.cli.main import main
from flowers.runs.serving_settings import BatchingSettings, VersionPolicy


@pytest.mark.parametrize(
    "text, chosen",
    [("latest", {9}), ("latest:2", {7, 9}), ("all", {3, 7, 9}), ("3,9", {3, 9}), ("4", set())],
)
def test_policies_choose_as_tf_serving_does(text, chosen):
    assert VersionPolicy.parse(text).choose([3, 7, 9]) == chosen


@pytest.mark.parametrize("text", ["latest:0", "newest", "latest:-1", "3;5", ""])
def test_bad_policies_are_refused_with_the_rule(text):
    with pytest.raises(ValueError, match="use latest, latest:N"):
        VersionPolicy.parse(text)


def test_bad_batching_is_refused():
    with pytest.raises(ValueError, match="max batch size 0: must be at least 1"):
        BatchingSettings(max_batch_size=0)


def test_cli_refuses_a_bad_policy_before_serving(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--versions", "newest", "--output-dir", "/nonexistent"])
    assert done.value.code == outcome.USAGE
    assert "version policy 'newest'" in capsys.readouterr().err
