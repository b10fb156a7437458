"""An HTTP endpoint for the exported SavedModels: a KServe model server over TF Serving's layout.

`PairModel` is a thin `kserve.Model` over `tf.saved_model.load(...).signatures["serving_default"]`.
KServe's V1 protocol is TF Serving's REST predict API, so the same requests work against
either server:

    POST /v1/models/<name>:predict   {"instances": [{"pair": [[[...14 x 14...]], [[...]]]}]}
                                     or {"inputs": {"pair": [...]}}  (columnar)
    GET  /v1/models/<name>           readiness

Like TF Serving, the server takes the highest numeric version under the base path and polls the
folder for newer ones; `.tmp-*` folders (exports being written) are never numeric, and a
version that does not load is skipped until it does. Every request is answered by one version:
the one current when it arrived.

A bad request is answered with HTTP 400 and a one-line reason (413 for a body over
MAX_BODY_BYTES, 404 for an unknown model name), and nothing a request holds reaches the model
before it is checked, so no request can change later answers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import PAIR_SHAPE
from .errors import ModelFileError
from .export import load_saved_model

MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB: about 6,000 pairs as JSON text, far above any one batch
POLL_SECONDS = 1.0  # TF Serving's default --file_system_poll_wait_seconds
SIGNATURE = "serving_default"


class BadRequest(ValueError):
    """A request that cannot be answered; the message is the one-line reason sent back."""


@dataclass(frozen=True)
class Served:
    version: int
    signature: object  # the concrete function of serving_default
    loaded: object  # keeps the SavedModel (and so the signature's variables) alive
    outputs: tuple[str, ...]


def load_version(base: Path, version: int) -> Served:
    """One version, checked against the contract: input `pair` (None, 2, 14, 14) float32."""
    import tensorflow as tf

    loaded, signature = load_saved_model(base / str(version))
    _, inputs = signature.structured_input_signature
    spec = inputs.get("pair")
    if spec is None or spec.dtype != tf.float32 or tuple(spec.shape) != (None, *PAIR_SHAPE):
        raise ModelFileError(f"{base / str(version)}: serving_default does not take pair float32 "
                             f"(None, 2, 14, 14) (it takes {inputs})")
    outputs = tuple(sorted(signature.structured_outputs))
    if "compare" not in outputs:
        raise ModelFileError(f"{base / str(version)}: serving_default has no `compare` output")
    return Served(version, signature, loaded, outputs)


def pairs_from(value, where: str) -> np.ndarray:
    """Nested lists of numbers -> (N, 2, 14, 14) float32, or a one-line BadRequest."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise BadRequest(f"{where}: ragged lists; expected numbers of shape (N, 2, 14, 14)") from None
    if arr.dtype.kind not in "iuf":
        raise BadRequest(f"{where}: expected numbers, got {arr.dtype.name if arr.dtype.kind != 'O' else 'other values'}")
    if arr.ndim != 4 or arr.shape[1:] != PAIR_SHAPE:
        raise BadRequest(f"{where}: expected shape (N, 2, 14, 14), got {arr.shape}")
    if len(arr) == 0:
        raise BadRequest(f"{where}: no pairs")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise BadRequest(f"{where}: NaN or infinite values (or numbers beyond float32)")
    return arr


def parse_request(body) -> tuple[np.ndarray, bool]:
    """TF Serving's two request formats: (pairs, columnar?). KServe parses a body sent as
    application/json; one sent with another content type (curl -d) arrives as bytes."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"the body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with `instances` or `inputs`")
    if body.get("signature_name", SIGNATURE) != SIGNATURE:
        raise BadRequest(f"unknown signature_name {body['signature_name']!r}; the model has {SIGNATURE!r}")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the body needs exactly one of `instances` (row format) or `inputs` (columnar format)")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("`instances` must be a non-empty list")
        if all(isinstance(i, dict) for i in instances):
            if any(set(i) != {"pair"} for i in instances):
                raise BadRequest("every instance must be an object with the one input `pair`")
            instances = [i["pair"] for i in instances]
        elif any(isinstance(i, dict) for i in instances):
            raise BadRequest("`instances` mixes objects and plain lists")
        return pairs_from(instances, "instances"), False
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        if set(inputs) != {"pair"}:
            raise BadRequest(f"`inputs` must hold the one input `pair`, got {sorted(inputs)}")
        inputs = inputs["pair"]
    return pairs_from(inputs, "inputs"), True


def answer(served: Served, pairs: np.ndarray, columnar: bool) -> dict:
    """TF Serving's response: `predictions` per instance, or `outputs` per output name."""
    import tensorflow as tf

    out = {k: v.numpy() for k, v in served.signature(pair=tf.constant(pairs)).items()}
    if columnar:
        return {"outputs": {k: out[k].tolist() for k in served.outputs}}
    return {"predictions": [{k: out[k][i].tolist() for k in served.outputs} for i in range(len(pairs))]}


class BodyLimit:
    """ASGI middleware: refuses a request body over `limit` bytes with 413 before it is parsed,
    whether the client declares its length or streams it in chunks."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send):
        body = b'{"error": "request body over %d bytes"}' % self.limit
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def serve(base_path: str | Path, name: str | None = None, http_port: int = 8080, workers: int = 1,
          poll_seconds: float = POLL_SECONDS) -> None:
    """Load the highest version under `base_path` and serve it until SIGTERM or SIGINT."""
    base = Path(base_path)
    if not base.is_dir():
        raise ModelFileError(f"{base}: no such folder (give a base path such as saved_models/cnn_aux)")
    if (base / "saved_model.pb").is_file():
        raise ModelFileError(f"{base}: is one version; give its base path {base.parent}, as TF Serving takes")
    import kserve

    from .kserve_model import PairModel

    model = PairModel(name or base.name, base, poll_seconds)
    model.load()
    kserve.ModelServer(http_port=http_port, workers=workers, enable_grpc=False).start([model])
    model.stop()
