"""Every command line: the `flowers` click groups and the `tfx` CLI entry files (the top layer)."""
