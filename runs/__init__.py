"""Finished runs read back: records in ML Metadata, summary and history, report, predict."""
