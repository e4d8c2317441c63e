"""`flowers serve`: TF Serving's REST API on loopback, against the shared
run's pushed model: status, metadata, predict in both formats, every error
the API documents, and answers equal to offline batch prediction."""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import tensorflow as tf
from serving_server import MAX_BATCH_SIZE, MODEL_URL, b64

from flowers import features
from flowers.runs import predict

pytestmark = pytest.mark.slow
OUTPUTS = {features.PROBABILITIES_OUTPUT, features.CLASS_ID_OUTPUT, features.CLASS_NAME_OUTPUT}


@pytest.fixture(scope="module")
def photos(photos_dir) -> list[tuple[str, bytes]]:
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(photos_dir) for name in names)[:4]
    return [(path, open(path, "rb").read()) for path in paths]


def test_status_lists_the_served_version_as_tf_serving_does(served, pushed):
    _, version = pushed
    expected = {
        "model_version_status": [
            {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert served.get(MODEL_URL)[:2] == (200, expected)
    assert served.get(f"{MODEL_URL}/versions/{version}")[:2] == (200, expected)


def test_metadata_has_the_signature_defs(served, pushed):
    _, version = pushed
    status, body, _ = served.get(f"{MODEL_URL}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "flowers", "signature_name": "", "version": version}
    signature = body["metadata"]["signature_def"]["signature_def"][features.BYTES_SIGNATURE]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"][features.SERVING_BYTES_INPUT]["dtype"] == "DT_STRING"
    assert signature["inputs"][features.SERVING_BYTES_INPUT]["tensor_shape"] == {"dim": [{"size": "-1"}]}
    assert set(signature["outputs"]) == OUTPUTS
    assert features.EXAMPLES_SIGNATURE in body["metadata"]["signature_def"]["signature_def"]
    assert served.get(f"{MODEL_URL}/versions/{version}/metadata")[1] == body


def test_predict_row_and_columnar_answer_what_offline_prediction_does(served, pushed, photos):
    output_dir, version = pushed
    offline = list(predict.predict_files(os.path.join(output_dir, "serving", version), [p for p, _ in photos]))
    images = [image for _, image in photos]

    status, rows, headers = served.predict(images)
    assert status == 200 and headers["x-model-version"] == version
    assert [set(p) for p in rows["predictions"]] == [OUTPUTS] * len(images)
    named = {"instances": [{features.SERVING_BYTES_INPUT: b64(image)} for image in images]}
    assert served.post(f"{MODEL_URL}/versions/{version}:predict", named)[1] == rows
    status, columns, _ = served.post(
        f"{MODEL_URL}:predict", {"inputs": {features.SERVING_BYTES_INPUT: [b64(i) for i in images]}}
    )
    assert status == 200
    assert served.post(f"{MODEL_URL}:predict", {"inputs": [b64(i) for i in images]})[1] == columns
    for i, (row, want) in enumerate(zip(rows["predictions"], offline, strict=True)):
        assert row[features.CLASS_NAME_OUTPUT] == want["class"] == columns["outputs"][features.CLASS_NAME_OUTPUT][i]
        assert row[features.CLASS_ID_OUTPUT] == want["class_id"] == columns["outputs"][features.CLASS_ID_OUTPUT][i]
        assert row[features.PROBABILITIES_OUTPUT] == pytest.approx(list(want["probabilities"].values()), abs=1e-6)
        assert columns["outputs"][features.PROBABILITIES_OUTPUT][i] == row[features.PROBABILITIES_OUTPUT]


def test_the_examples_signature_answers_the_same(served, photos):
    images = [image for _, image in photos[:2]]
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
            )
        ).SerializeToString()
        for image in images
    ]
    status, body, _ = served.post(
        f"{MODEL_URL}:predict", {"signature_name": features.EXAMPLES_SIGNATURE, "instances": [b64(e) for e in examples]}
    )
    assert status == 200
    assert body == served.predict(images)[1]


def _error(served, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    status, answer, _ = served.request(method, path, body)
    assert set(answer) == {"error"}, answer  # TF Serving's error body: one key
    return status, answer["error"]


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("POST", f"{MODEL_URL}:predict", b'{"instances": [', 400, "JSON Parse error"),
        ("POST", f"{MODEL_URL}:predict", b'{"instances": [{"b64": "no*base64"}]}', 400, "Unable to base64 decode"),
        (
            "POST",
            f"{MODEL_URL}:predict",
            b'{"instances": [{"b64": "bm90IGFuIGltYWdl"}]}',
            400,
            "instance 0 is not a readable image: Unknown image file format",
        ),
        (
            "POST",
            f"{MODEL_URL}:predict",
            b'{"signature_name": "nope", "instances": []}',
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        ("POST", f"{MODEL_URL}:predict", b'{"examples": []}', 400, "Missing 'inputs' or 'instances' key"),
        ("POST", "/v1/models/nope:predict", b'{"instances": []}', 404, "Servable not found for request: Latest(nope)"),
        (
            "POST",
            f"{MODEL_URL}/versions/7:predict",
            b'{"instances": []}',
            404,
            "Servable not found for request: Specific(flowers, 7)",
        ),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", f"{MODEL_URL}/versions/7", None, 404, "Could not find version 7 of model flowers"),
        ("GET", f"{MODEL_URL}:predict", None, 400, "Malformed request: GET /v1/models/flowers:predict"),
    ],
)
def test_errors_have_tf_servings_body_and_status(served, method, path, body, status, message):
    got_status, got = _error(served, method, path, body)
    assert (got_status, got[: len(message)]) == (status, message), got


def test_a_request_over_the_batch_size_limit_is_refused(served, photos):
    image = photos[0][1]
    assert served.predict([image] * MAX_BATCH_SIZE)[0] == 200
    status, body, _ = served.predict([image] * (MAX_BATCH_SIZE + 1))
    assert (status, body) == (
        400,
        {"error": f"Task size {MAX_BATCH_SIZE + 1} is larger than maximum input batch size {MAX_BATCH_SIZE}"},
    )


def test_bad_requests_among_concurrent_good_ones_fail_alone(served, photos):
    """Batched together or not, a request that is not an image gets its 400
    and every good request its answer."""
    good = photos[0][1]
    want = served.predict([good])[1]

    def send(i: int):
        return served.predict([b"not an image" if i % 3 == 0 else good])

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(36)))
    for i, (status, body, _) in enumerate(answers):
        if i % 3 == 0:
            assert status == 400 and "not a readable image" in body["error"]
        else:
            # Batched with others or alone: the same answer, up to float rounding of a different batch size.
            got, expected = body["predictions"][0], want["predictions"][0]
            assert status == 200 and got[features.CLASS_NAME_OUTPUT] == expected[features.CLASS_NAME_OUTPUT]
            assert got[features.PROBABILITIES_OUTPUT] == pytest.approx(
                expected[features.PROBABILITIES_OUTPUT], abs=1e-5
            )
