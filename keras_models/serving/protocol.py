"""The serving protocol, apart from any server: TF Serving's REST requests parsed into checked
pairs and answered from one loaded version, and the body-size limit. `kserve_model.PairModel`
serves it with KServe, and `server.serve` starts that server.

KServe's V1 protocol is TF Serving's REST predict API, so the same requests work against
either server:

    POST /v1/models/<name>:predict   {"instances": [{"pair": [[[...14 x 14...]], [[...]]]}]}
                                     or {"inputs": {"pair": [...]}}  (columnar)

`routes.py` answers every model path of both protocols, with and without a version.

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
import re

import numpy as np

from keras_models.data.contract import PAIR_SHAPE, SHAPE_TEXT, check_pairs
from keras_models.serving.loaded import LoadedExport

MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB: about 6,000 pairs as JSON text, far above any one batch
POLL_SECONDS = 1.0  # TF Serving's default --file_system_poll_wait_seconds
SIGNATURE = "serving_default"


class BadRequest(ValueError):
    """A request that cannot be answered; the message is the one-line reason sent back."""


# What str.splitlines() breaks a line at, and the other control characters: a client's own
# text (a key, a name) echoed in an error is escaped, so that every error stays one line.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


def parse_request(body, pixel_range: tuple[float, float] | None = None) -> tuple[np.ndarray, bool]:
    """TF Serving's two request formats: (pairs, columnar?), checked against the pair contract
    (with the served version's `pixel_range`). KServe parses a body sent as application/json;
    one sent with another content type (curl -d) arrives as bytes."""
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
        return check_pairs(instances, "instances", BadRequest, pixel_range), False
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        if set(inputs) != {"pair"}:
            raise BadRequest(f"`inputs` must hold the one input `pair`, got {sorted(inputs)}")
        inputs = inputs["pair"]
    return check_pairs(inputs, "inputs", BadRequest, pixel_range), True


def answer(served: LoadedExport, pairs: np.ndarray, columnar: bool) -> dict:
    """TF Serving's response: `predictions` per instance, or `outputs` per output name."""
    out = served.run(pairs)
    if columnar:
        return {"outputs": {k: out[k].tolist() for k in served.outputs}}
    return {"predictions": [{k: out[k][i].tolist() for k in served.outputs} for i in range(len(pairs))]}


def v2_pairs(name: str, datatype: str, shape, data, pixel_range) -> np.ndarray:
    """The one V2 input tensor `pair` (its name, datatype, shape and decoded data) as checked
    pairs, or a one-line BadRequest."""
    if name != "pair":
        raise BadRequest(f"the input must be `pair`, got {name!r}")
    if datatype != "FP32":
        raise BadRequest(f"`pair` must be FP32, got {datatype}")
    if len(shape) != 4 or tuple(shape[1:]) != PAIR_SHAPE:
        raise BadRequest(f"`pair` must have shape {SHAPE_TEXT}, got {list(shape)}")
    return check_pairs(data, "pair", BadRequest, pixel_range)


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
        # The whole body is read here, at most `limit` bytes of it, and then handed on: an error
        # raised while the app itself reads a chunked body would be answered by FastAPI's body
        # parser as a 400 of its own instead of this 413.
        messages, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return await self.app(scope, replay([*messages, message], receive), send)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            messages.append(message)
            more = message.get("more_body", False)
        await self.app(scope, replay(messages, receive), send)

    async def _refuse(self, send):
        await send_json(send, 413, {"error": f"request body over {self.limit} bytes"})


def replay(messages: list, receive):
    """An ASGI `receive` that gives `messages` again, then what the client sends next."""
    pending = list(messages)

    async def receive_again():
        return pending.pop(0) if pending else await receive()

    return receive_again


async def send_json(send, status: int, body: dict, headers=()) -> None:
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})
