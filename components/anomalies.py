"""The anomalies ExampleValidator recorded, in a line each per split and
feature. Apart from the gate so that reading a run back (history, report)
does not import TFX."""

from __future__ import annotations

import os


def describe_anomalies(uri: str) -> dict[str, list[str]]:
    """split -> "feature: what is wrong" for each anomaly recorded under `uri`."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found: dict[str, list[str]] = {}
    for path in sorted(tf.io.gfile.glob(f"{uri}/Split-*/SchemaDiff.pb")):
        anomalies = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read())
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        lines = [f"{name}: {_reasons(info)}" for name, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"(dataset): {_reasons(anomalies.dataset_anomaly_info)}")
        if lines:
            found[split] = lines
    return found


def _reasons(info) -> str:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    texts = [
        # A custom validation's own words are its short description; its
        # description only repeats the SQL.
        r.short_description
        if r.type == anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION
        else (r.description or r.short_description)
        for r in info.reason
    ]
    return "; ".join(texts) or info.description
