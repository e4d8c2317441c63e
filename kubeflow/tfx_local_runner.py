"""Pipeline file for the `tfx` CLI's local engine (TFX LocalDagRunner):

    tfx pipeline create --engine=local --pipeline_path=kubeflow/tfx_local_runner.py
    tfx run create --engine=local --pipeline_name=flowers

The CLI runs this file with no arguments, so settings come from
$FLOWERS_SETTINGS, written like `flowers run --set`: "epochs=3 output_dir=/tmp/x".
`tfx pipeline create/update/compile` only build the pipeline; `tfx run create`
runs it exactly as `flowers run` does.
"""
from __future__ import annotations

if __name__ == "__main__":
    from flowers.kubeflow.cli import config_from_env

    config = config_from_env()  # a bad setting stops here, before TensorFlow loads

    from flowers.pipeline import local

    local.run(config)
