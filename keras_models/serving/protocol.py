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

import asyncio
import json
import logging
import re

import numpy as np

from keras_models.data.contract import PAIR_SHAPE, SHAPE_TEXT, check_pairs
from keras_models.serving.loaded import LoadedExport

MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB: about 6,000 pairs as JSON text, far above any one batch
# The longest a request body may take to arrive (serve.py --body-timeout): a stalled upload holds
# a connection, and a thousand of them hold the server.
BODY_SECONDS = 30.0
# --request-log: what the server's log says of each request. KServe writes four lines for a V1
# predict (uvicorn's access line, and three timings of its own), about 38 MB after 80k requests.
REQUEST_LOGS = {
    "none": {"uvicorn.access": logging.WARNING, "kserve.trace": logging.WARNING},
    "line": {"uvicorn.access": logging.INFO, "kserve.trace": logging.WARNING},
    "full": {"uvicorn.access": logging.INFO, "kserve.trace": logging.INFO},
}
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
    if isinstance(body, bytes):  # a JSON body arrives parsed: a str is a JSON string
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"the body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        got = {str: "a string", list: "a list", bool: "a boolean", type(None): "null"}.get(type(body), "a number")
        raise BadRequest(f"the body must be a JSON object with `instances` or `inputs`, got {got}")
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
    if len(shape) != 4 or tuple(shape[1:]) != PAIR_SHAPE or shape[0] < 0:
        raise BadRequest(f"`pair` must have shape {SHAPE_TEXT}, got {list(shape)}")
    return check_pairs(data, "pair", BadRequest, pixel_range)


# The bytes of one element of each numeric datatype of the Open Inference Protocol.
DATATYPE_BYTES = {
    "BOOL": 1,
    "UINT8": 1,
    "INT8": 1,
    "UINT16": 2,
    "INT16": 2,
    "FP16": 2,
    "UINT32": 4,
    "INT32": 4,
    "FP32": 4,
    "UINT64": 8,
    "INT64": 8,
    "FP64": 8,
}


def check_binary_request(body: bytes, declared: bytes) -> None:
    """A V2 request in the binary tensor extension: a JSON header of `declared` bytes
    (Inference-Header-Content-Length), then each binary input's bytes. The framing is checked
    before KServe decodes it, so that a header that lies about a length is a BadRequest: the
    header's length, each input's binary_data_size against its shape and datatype, and their
    sum against the bytes that follow."""
    text = declared.decode("latin-1").strip()
    if not text.isdigit():
        raise BadRequest(f"Inference-Header-Content-Length must be a whole number of bytes, got {text[:40]!r}")
    length = int(text)
    if not 0 < length <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length is {length}, the body holds {len(body)} bytes")
    try:
        header = json.loads(body[:length])
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the JSON header (the first {length} bytes) is not valid JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise BadRequest("the JSON header must be an object with a list `inputs`")
    binary = 0
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict):
            raise BadRequest("every input of the JSON header must be an object")
        name, parameters = str(tensor.get("name"))[:40], tensor.get("parameters") or {}
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue  # its data is in the JSON header, checked with the input itself
        size, shape = parameters["binary_data_size"], tensor.get("shape")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a positive whole number, got {size!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise BadRequest(f"input {name!r}: shape must be a list of sizes >= 0, got {shape!r}")
        item = DATATYPE_BYTES.get(tensor.get("datatype"))
        if item is None:
            raise BadRequest(
                f"input {name!r}: datatype {tensor.get('datatype')!r} is not a numeric type of the protocol"
            )
        if size != item * int(np.prod(shape)):
            raise BadRequest(
                f"input {name!r}: binary_data_size is {size} bytes, shape {shape} of {tensor['datatype']} takes "
                f"{item * int(np.prod(shape))}"
            )
        binary += size
    if binary != len(body) - length:
        raise BadRequest(
            f"the binary inputs' binary_data_size add up to {binary} bytes, the body holds {len(body) - length} "
            "after the JSON header"
        )


class BodyLimit:
    """ASGI middleware: refuses a request body over `limit` bytes with 413 before it is parsed,
    whether the client declares its length or streams it in chunks, and one that has not
    arrived whole within `timeout` seconds with 408. A client that hangs up mid-body is let go:
    there is nobody to answer."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES, timeout: float = BODY_SECONDS):
        self.app, self.limit, self.timeout = app, limit, timeout

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
        deadline = asyncio.get_running_loop().time() + self.timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                error = {"error": f"the request body did not arrive within {self.timeout:g} s"}
                # The rest of the body may never come: the connection is closed, not kept for another request.
                return await send_json(send, 408, error, [(b"connection", b"close")])
            if message["type"] != "http.request":  # the client went away
                return None
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


async def read_body(receive) -> bytes | None:
    """A request's whole body (protocol.BodyLimit has bounded its size and time), or None when
    the client hung up."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body, more = body + message.get("body", b""), message.get("more_body", False)
    return body
