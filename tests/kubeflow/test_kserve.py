"""The KServe InferenceService `flowers kubeflow kserve` prints, checked
offline against KServe's own CRD schema (v1beta1 openAPIV3Schema, cut to
the fields flowers writes, unknown fields refused as `kubectl
--validate=strict` does; origin in the schema file's $comment)."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
import yaml

from flowers.cli.main import main
from flowers.kubeflow import kserve

SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "kserve_inferenceservice_schema.json")))


def errors(manifest: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(manifest)]


def test_printed_manifest_passes_kserves_schema(capsys):
    main(
        [
            "kubeflow",
            "kserve",
            "--output-dir",
            "gs://bucket/flowers/",
            "--namespace",
            "team",
            "--service-account",
            "reader",
            "--runtime-version",
            "2.16.1",
        ]
    )
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert errors(manifest) == []
    tensorflow = manifest["spec"]["predictor"]["tensorflow"]
    assert tensorflow["storageUri"] == "gs://bucket/flowers/serving"  # the Pusher's destination
    assert manifest["metadata"] == {"name": "flowers", "namespace": "team"}
    assert manifest["spec"]["predictor"]["serviceAccountName"] == "reader"


def test_the_schema_check_catches_what_kubernetes_would_refuse():
    manifest = kserve.inference_service("flowers", "gs://b/serving")
    assert errors(manifest) == []
    typo = json.loads(json.dumps(manifest))
    typo["spec"]["predictor"]["tensorflow"]["storageURI"] = typo["spec"]["predictor"]["tensorflow"].pop("storageUri")
    assert errors(typo) == ["Additional properties are not allowed ('storageURI' was unexpected)"]
    bad_quantity = kserve.inference_service("flowers", "gs://b/serving", cpu="lots")
    assert len(errors(bad_quantity)) == 2  # requests and limits


def test_bad_names_are_refused_with_the_rule():
    with pytest.raises(ValueError, match="lowercase letters, digits and '-'"):
        kserve.inference_service("Flowers_Model", "gs://b/serving")
