"""Pipeline file for the `tfx` CLI's local engine (TFX LocalDagRunner):

    tfx pipeline create --engine=local --pipeline_path="$PWD/cli/tfx_local_runner.py"
    tfx run create --engine=local --pipeline_name=flowers

The CLI runs this file with no arguments, so settings come from
$FLOWERS_SETTINGS, written like `flowers run --set`: "epochs=3 output_dir=/tmp/x".
`tfx pipeline create/update/compile` execute it inside the CLI with
LocalDagRunner.run patched to record the pipeline; `tfx run create` (or
`python cli/tfx_local_runner.py`) runs it as `flowers run` does, with the
same progress, summary and exit codes (`tfx run create` itself turns any
non-zero code into 1: schedulers should run this file or `flowers run`).
"""

from __future__ import annotations

if __name__ == "__main__":
    import importlib
    import os
    import shlex
    import sys

    from flowers.cli import main as cli
    from flowers.cli.kubeflow import SETTINGS_ENV, config_from_env

    # Only the tfx CLI's own process (which has imported TFX) can have patched
    # LocalDagRunner; a fresh `python cli/tfx_local_runner.py` is a run, whose
    # supervisor needs no TFX: importing it here cost seconds before anything.
    tfx = importlib.import_module("tfx.v1") if "tfx" in sys.modules else None
    if tfx and hasattr(tfx.orchestration.LocalDagRunner.run, "__wrapped__"):
        # The tfx CLI's patcher wraps LocalDagRunner.run: it only wants the pipeline.
        from flowers.data import layout
        from flowers.pipeline.pipeline import create_pipeline

        tfx.orchestration.LocalDagRunner().run(create_pipeline(layout.resolve(config_from_env())))
    else:
        settings = shlex.split(os.environ.get(SETTINGS_ENV, ""))
        cli.main(["run", *(arg for item in settings for arg in ("--set", item))])
