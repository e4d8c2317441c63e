"""Pipeline file for the `tfx` CLI's Kubeflow V2 / Vertex AI engine
(KubeflowV2DagRunner, the only Kubeflow runner TFX 1.16 has):

    tfx pipeline compile --engine=vertex --pipeline_path=cli/tfx_kubeflow_v2_runner.py
    tfx pipeline create --engine=vertex --pipeline_path=cli/tfx_kubeflow_v2_runner.py

It writes the Vertex AI PipelineJob JSON to $FLOWERS_PACKAGE (default
outputs/kubeflow/flowers.json; `pipeline create` keeps its own copy under
~/tfx/vertex/flowers/). Settings come from $FLOWERS_SETTINGS, written like
`--set`: "output_dir=gs://bucket/flowers image=gcr.io/project/flowers:1".
"""

from __future__ import annotations

if __name__ == "__main__":
    import os

    from flowers.cli.kubeflow import config_from_env
    from flowers.kubeflow.runner import compile_pipeline

    compile_pipeline(config_from_env(), os.environ.get("FLOWERS_PACKAGE", "outputs/kubeflow/flowers.json"))
