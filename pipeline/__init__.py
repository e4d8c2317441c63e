"""flowers.pipeline: the pipeline definition, its runners, results and the CLI."""
