"""How a run's state is read back from ML Metadata when nothing recorded its
end: a store written as TFX writes one (run and node contexts, executions),
for a run killed between two components, where no execution is unfinished."""

from __future__ import annotations

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from flowers.config import PipelineConfig
from flowers.outcome import State
from flowers.runs import records, results

RUN_ID = "2026-12-02T05:19:23.000000"


def _context(store: mlmd.MetadataStore, type_name: str, name: str) -> pb.Context:
    type_id = store.put_context_type(pb.ContextType(name=type_name))
    context = pb.Context(type_id=type_id, name=name)
    context.id = store.put_contexts([context])[0]
    return context


@pytest.fixture
def store(tmp_path) -> mlmd.MetadataStore:
    """One run whose first component completed and whose worker then died:
    nothing after it has an execution."""
    connection = pb.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    store = mlmd.MetadataStore(connection)
    run = _context(store, records.RUN_CONTEXT, RUN_ID)
    node = _context(store, records.NODE_CONTEXT, "flowers.ImportExampleGen")
    execution = pb.Execution(
        type_id=store.put_execution_type(pb.ExecutionType(name="tfx.components.ImportExampleGen")),
        last_known_state=pb.Execution.COMPLETE,
    )
    store.put_execution(execution, [], [run, node])
    return store


def test_a_run_killed_between_components_reads_as_interrupted(store):
    summary = results.summarize(store, RUN_ID, live_run=None)
    assert summary.state == State.INTERRUPTED.value
    assert summary.executions == {"ImportExampleGen": "COMPLETE"} and summary.failed_component is None


def test_while_it_holds_the_lock_it_is_running(store):
    assert results.summarize(store, RUN_ID, live_run=RUN_ID).state == State.RUNNING.value


def test_a_run_that_ended_without_its_later_components_failed(store):
    # Its worker's end (or its supervisor's conclusion) recorded the settings.
    results.record_run(store, RUN_ID, PipelineConfig(), spans=[0])
    assert results.summarize(store, RUN_ID, live_run=None).state == State.FAILED.value


def test_history_keeps_what_it_read(store):
    assert results.summary_kept(store, RUN_ID).state == State.INTERRUPTED.value
    assert results.SUMMARY_PROPERTY in records.run_context(store, RUN_ID).custom_properties
