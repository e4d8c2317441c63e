"""flowers.kubeflow: compile, preflight, submit and schedule the pipeline on Kubeflow Pipelines."""
