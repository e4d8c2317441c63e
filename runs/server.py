"""`flowers serve`: the pushed model behind TensorFlow Serving's REST API.

Same paths, request and response bodies and status codes as TF Serving's
RESTful API (https://www.tensorflow.org/tfx/serving/api_rest), so a client
written against this server works unchanged against TF Serving or KServe's
TensorFlow runtime: model status, metadata (signature defs) and predict, in
the row (`instances`) and columnar (`inputs`) formats, binary values as
`{"b64": ...}`, errors as `{"error": "..."}`. Two additions that a TF
Serving client never sees: every predict answer carries the version that
answered in an `X-Model-Version` header, and `/` is a web page that calls
the same API.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import re
import signal
import sys
from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from flowers import features
from flowers.runs.batching import BatchSizeError
from flowers.runs.serving_settings import DEFAULT_HOST, DEFAULT_PORT, ServeSettings
from flowers.runs.versions import SIGNATURE_INPUTS, ServedVersion, VersionManager, log

VERSION_HEADER = "X-Model-Version"
# Output tensors whose names end so are binary and answered as {"b64": ...} (TF Serving's rule).
BINARY_SUFFIX = "_bytes"
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<metadata>/metadata)?(?::(?P<verb>[a-z]+))?$"
)


class ServingError(Exception):
    """An answer `{"error": message}` with an HTTP status, as TF Serving gives it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _not_found_servable(name: str, version: str | None) -> ServingError:
    request = f"Specific({name}, {version})" if version else f"Latest({name})"
    return ServingError(404, f"Servable not found for request: {request}")


def create_app(settings: ServeSettings) -> Starlette:
    manager = VersionManager(settings.serving_dir, settings.policy, settings.batching, settings.poll_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await manager.start()
        if not manager.served:
            log.warning("no version of %s loaded yet; polling every %g s", settings.serving_dir, settings.poll_seconds)
        yield
        await manager.stop()  # after the last request is answered

    async def page(request: Request) -> Response:
        html = resources.files("flowers.runs").joinpath("static/index.html").read_text()
        html = html.replace("{{MODEL_NAME}}", settings.model_name)
        return HTMLResponse(html.replace("{{CLASS_NAMES}}", json.dumps(features.CLASS_NAMES)))

    async def api(request: Request) -> Response:
        try:
            return await _api(request, settings, manager)
        except ServingError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)

    routes = [
        Route("/", page),
        Route("/v1/{rest:path}", api, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.manager = manager
    return app


async def _api(request: Request, settings: ServeSettings, manager: VersionManager) -> Response:
    match = _PATH.match(request.url.path)
    if not match:
        raise ServingError(400, f"Malformed request: {request.method} {request.url.path}")
    name, version, metadata, verb = match["name"], match["version"], match["metadata"], match["verb"]
    if version is not None and not version.isdigit():
        raise ServingError(400, f"Malformed request: {request.method} {request.url.path}")
    if request.method == "GET" and not verb:
        if metadata:
            return _metadata(settings, manager, name, version)
        return _status(settings, manager, name, version)
    if request.method == "POST" and verb and not metadata:
        if verb != "predict":
            if verb in ("classify", "regress"):
                raise ServingError(
                    400,
                    f"Expected {verb} signature method_name to be tensorflow/serving/{verb}. "
                    "Was: tensorflow/serving/predict",
                )
            raise ServingError(400, f"Malformed request: {request.method} {request.url.path}")
        return await _predict(request, settings, manager, name, version)
    raise ServingError(400, f"Malformed request: {request.method} {request.url.path}")


def _status(settings: ServeSettings, manager: VersionManager, name: str, version: str | None) -> Response:
    if name != settings.model_name or not manager.states:
        raise ServingError(404, f"Could not find any versions of model {name}")
    states = manager.states
    if version is not None:
        if int(version) not in states:
            raise ServingError(404, f"Could not find version {version} of model {name}")
        states = {int(version): states[int(version)]}
    return JSONResponse(
        {
            "model_version_status": [
                {
                    "version": str(v),
                    "state": s.state,
                    "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error},
                }
                for v, s in sorted(states.items(), reverse=True)
            ]
        }
    )


def _served(settings: ServeSettings, manager: VersionManager, name: str, version: str | None) -> ServedVersion:
    if name != settings.model_name:
        raise _not_found_servable(name, version)
    served = manager.served.get(int(version)) if version is not None else manager.latest()
    if served is None:
        raise _not_found_servable(name, version)
    return served


def _metadata(settings: ServeSettings, manager: VersionManager, name: str, version: str | None) -> Response:
    served = _served(settings, manager, name, version)
    return JSONResponse(
        {
            "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
            "metadata": {"signature_def": {"signature_def": served.signature_defs}},
        }
    )


async def _predict(
    request: Request, settings: ServeSettings, manager: VersionManager, name: str, version: str | None
) -> Response:
    _served(settings, manager, name, version)  # unknown model or version: 404 whatever the body, as TF Serving
    body = await request.body()
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ServingError(400, f"JSON Parse error: {error}") from None
    if not isinstance(payload, dict):
        raise ServingError(400, "JSON Value: not an object. Expected the request body to be a JSON object")
    signature = payload.get("signature_name", features.BYTES_SIGNATURE)
    if signature not in SIGNATURE_INPUTS:
        raise ServingError(400, f'Serving signature name: "{signature}" not found in signature def')
    input_name = SIGNATURE_INPUTS[signature]
    if ("instances" in payload) == ("inputs" in payload):
        raise ServingError(
            400,
            "Missing 'inputs' or 'instances' key"
            if "instances" not in payload
            else "Not both 'inputs' and 'instances' keys",
        )
    row = "instances" in payload
    items = _row_items(payload["instances"], input_name) if row else _columnar_items(payload["inputs"], input_name)
    if not items:
        raise ServingError(400, f"No values for input {input_name!r}: send at least one")
    with _served(settings, manager, name, version).held() as served:
        try:
            outputs = await served.batchers[signature].submit(items)
        except BatchSizeError as error:
            raise ServingError(400, str(error)) from None
        except Exception as error:  # noqa: BLE001 - the model's verdict on the input, or a failure to say
            raise await asyncio.to_thread(_model_error, error, items) from None
    headers = {VERSION_HEADER: str(served.version)}
    if row:
        count = len(items)
        predictions = [{key: _json_value(key, value[i]) for key, value in outputs.items()} for i in range(count)]
        return JSONResponse({"predictions": predictions}, headers=headers)
    return JSONResponse({"outputs": {key: _json_value(key, value) for key, value in outputs.items()}}, headers=headers)


def _decode(value, where: str) -> bytes:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(400, f'{where}: a binary value must be {{"b64": "<base64 string>"}}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(400, f"Unable to base64 decode {where}") from None
    if isinstance(value, str):
        return value.encode()
    raise ServingError(
        400, f'{where}: expected a string or {{"b64": ...}} (the input is DT_STRING), got {json.dumps(value)[:60]}'
    )


def _row_items(instances, input_name: str) -> list[bytes]:
    if not isinstance(instances, list):
        raise ServingError(400, "Expecting 'instances' to be a list/array with each element representing one instance")
    items = []
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and "b64" not in instance:
            if set(instance) != {input_name}:
                raise ServingError(
                    400, f"instance {i}: expected the one named input {input_name!r}, got {sorted(instance)}"
                )
            instance = instance[input_name]
        items.append(_decode(instance, f"instance {i}"))
    return items


def _columnar_items(inputs, input_name: str) -> list[bytes]:
    if isinstance(inputs, dict) and "b64" not in inputs:
        if input_name not in inputs:
            raise ServingError(400, f"Missing named input: {input_name} in 'inputs' object.")
        extra = sorted(set(inputs) - {input_name})
        if extra:
            raise ServingError(400, f"'inputs' object has inputs the signature does not take: {', '.join(extra)}")
        inputs = inputs[input_name]
    if not isinstance(inputs, list):
        raise ServingError(400, f"input {input_name} takes a list of values (shape [-1])")
    return [_decode(value, f"{input_name}[{i}]") for i, value in enumerate(inputs)]


def _json_value(name: str, value):
    """One output as TF Serving writes it: nested lists, floats with float32's
    9 significant digits, strings as text unless the name marks them binary."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_json_value(name, v) for v in value]
    if isinstance(value, bytes):
        if name.endswith(BINARY_SUFFIX):
            return {"b64": base64.b64encode(value).decode()}
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (np.floating, float)):
        number = float(f"{float(value):.9g}")
        return number if math.isfinite(number) else str(number)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value.item() if hasattr(value, "item") else value


def _model_error(error: BaseException, items: list[bytes]) -> ServingError:
    """TensorFlow's error as TF Serving maps it (bad input 400, else 500), in
    the decoder's own words when an item is not an image."""
    import tensorflow as tf

    if isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.UnknownError)):
        for i, item in enumerate(items):
            try:
                tf.io.decode_image(item, channels=3, expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as bad:
                return ServingError(400, f"instance {i} is not a readable image: {_clean(bad.message)}")
        return ServingError(400, _clean(error.message))
    return ServingError(500, _clean(getattr(error, "message", "") or str(error)) or type(error).__name__)


def _clean(message: str) -> str:
    """TensorFlow's message without node names, op tags or the generic first line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    lines = [
        line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "File ", "["))
    ] or lines
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", lines[0] if lines else "")
    return re.sub(r"\s*\[Op:\w+\]", "", text).strip()


def serve(settings: ServeSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until SIGTERM or Ctrl-C; requests in flight are answered first."""
    import uvicorn

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    app = create_app(settings)
    log.info(
        "serving %s (%s) at http://%s:%s/ (REST: /v1/models/%s, batches of up to %s)",
        settings.serving_dir,
        settings.policy,
        host,
        port,
        settings.model_name,
        settings.batching.max_batch_size,
    )
    # uvicorn's own SIGTERM handling: stop accepting, finish the requests in
    # flight (up to the grace period), run the shutdown hooks. It then raises
    # the signal again for the handler it found; this one makes that exit 0,
    # what Kubernetes and supervisors expect after a clean drain.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, access_log=False)
    ).run()
