"""The model paths of both protocols, as their specifications write them, in front of KServe's
routes: TF Serving's REST API (V1) and the Open Inference Protocol (V2), each with and without a
version in the path.

    V1  GET  /v1/models/{m}[/versions/{v}]                  the version status
        GET  /v1/models/{m}[/versions/{v}]/metadata         the signature, TF Serving's form
        POST /v1/models/{m}[/versions/{v}]:predict          predict; :classify and :regress are 400
        any  /v1/models/{m}/labels/{label}...               404: an export names no labels
    V2  GET  /v2/models/{m}[/versions/{v}]                  the model metadata
        GET  /v2/models/{m}[/versions/{v}]/ready            readiness
        POST /v2/models/{m}[/versions/{v}]/infer            inference

The server loads one version at a time, the newest that loads (TF Serving's default version
policy, `latest` of 1). A path without a version is answered by it; a path with its number too,
and a path with another number gets 404, as does an unknown model. A pinned request carries its
version to the model (`VERSION_HEADER`), so that a version switched in meanwhile never answers it.
Every refusal is one line, `{"error": ...}`; the requests that pass on reach KServe's own routes.
"""

from __future__ import annotations

import re

from keras_models.data.contract import PAIR_SHAPE, output_shape
from keras_models.serving.loaded import LoadedExport
from keras_models.serving.protocol import (
    SIGNATURE,
    BadRequest,
    check_binary_request,
    one_line,
    read_body,
    replay,
    send_json,
)

VERSION_HEADER = b"x-keras-models-version"
BINARY_HEADER = b"inference-header-content-length"
# KServe's model-repository extension (load and unload by request), which this server does not offer.
REPOSITORY = "/v2/repository"
JSON = b"application/json"
# V1 puts its verbs after a colon (`:predict`), so its names and versions have none; V2's may.
PATH = re.compile(
    r"^/(?P<api>v1)/models/(?P<model>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?(?P<rest>(?:/[^/:]+|:[a-z]+)?)$"
    r"|^/(?P<api2>v2)/models/(?P<model2>[^/]+)(?:/versions/(?P<version2>[^/]+))?(?P<rest2>/ready|/infer)?$"
)


def path_parts(path: str):
    """(api, model, version, label, rest) of a model path of either protocol, or None."""
    found = PATH.match(path)
    if found is None:
        return None
    if found.group("api"):
        return found.group("api", "model", "version", "label", "rest")
    return "v2", found.group("model2"), found.group("version2"), None, found.group("rest2") or ""


# (api, rest): the method each path takes.
METHODS = {
    ("v1", ""): "GET",
    ("v1", "/metadata"): "GET",
    ("v1", ":predict"): "POST",
    ("v1", ":infer"): "POST",
    ("v2", ""): "GET",
    ("v2", "/ready"): "GET",
    ("v2", "/infer"): "POST",
}
OTHER_SIGNATURES = (":classify", ":regress")


def version_status(served: LoadedExport) -> list[dict]:
    ok = {"error_code": "OK", "error_message": ""}
    return [{"version": str(served.version), "state": "AVAILABLE", "status": ok}]


def v1_status(served: LoadedExport | None, name: str) -> dict:
    """GET /v1/models/<name>: KServe's readiness, and TF Serving's model_version_status of every
    loaded version (the one served)."""
    status = {"name": name, "ready": served is not None}
    if served is not None:
        status["model_version_status"] = version_status(served)
    return status


def v1_metadata(served: LoadedExport, name: str) -> dict:
    """GET /v1/models/<name>/metadata: TF Serving's signature map of the served version."""

    def tensor(key: str, shape) -> dict:
        dims = [{"size": str(d), "name": ""} for d in (-1, *shape)]
        return {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": key}

    signature = {
        "inputs": {"pair": tensor(f"{SIGNATURE}_pair:0", PAIR_SHAPE)},
        "outputs": {k: tensor(f"StatefulPartitionedCall:{i}", output_shape(k)) for i, k in enumerate(served.outputs)},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def v2_metadata(served: LoadedExport, name: str) -> dict:
    """GET /v2/models/<name>: the Open Inference Protocol's model metadata, with the served version."""
    return {
        "name": name,
        "versions": [str(served.version)],
        "platform": served.runtime.platform,
        "inputs": [{"name": "pair", "datatype": "FP32", "shape": [-1, *PAIR_SHAPE]}],
        "outputs": [{"name": k, "datatype": "FP32", "shape": [-1, *output_shape(k)]} for k in served.outputs],
    }


class ProtocolRoutes:
    """ASGI middleware before KServe's routes. `served(name)` is the LoadedExport of the model
    of that name (None while it has none); an unknown name raises KeyError."""

    def __init__(self, app, served):
        self.app, self.served = app, served

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(REPOSITORY):
            error = (
                "this server loads the versions of its base path itself; models are not loaded or unloaded by request"
            )
            return await send_json(send, 404, {"error": error})
        parts = path_parts(scope["path"]) if scope["type"] == "http" else None
        if parts is None:
            return await self.app(scope, receive, send)
        api, name, version, label, rest = parts
        method = scope["method"]
        if rest in OTHER_SIGNATURES and api == "v1":
            error = f"the model's one signature, {SIGNATURE}, is a predict signature; use :predict"
            return await send_json(send, 400, {"error": error})
        takes = METHODS.get((api, rest))
        if takes is None and api == "v1" and rest.startswith(":"):  # KServe's :explain, say
            return await send_json(send, 404, {"error": f"{rest}: the models here answer :predict only"})
        if takes is None:  # not a path of the protocols: KServe's 404
            return await self.app(scope, receive, send)
        if method != takes:
            path = scope["path"]
            return await send_json(send, 405, {"error": f"{path} takes {takes}"}, [(b"allow", takes.encode())])
        try:
            served = self.served(name)
        except KeyError:
            return await send_json(send, 404, {"error": f"model {name!r} is not served here"})
        if label is not None:
            error = f"model {name!r} has no version labels; name a version, /versions/{served_number(served)}"
            return await send_json(send, 404, {"error": error})
        error = version_refusal(name, served, version)
        if error is not None:
            return await send_json(send, 404, {"error": error})
        if method == "GET":
            answer = self.answer_get(api, rest, served, name)
            if answer is not None:
                return await send_json(send, 200, answer)
        # Passed on without the version, which KServe's routes do not take, and with it in a
        # header for the model to hold the request to.
        headers = dict(scope["headers"])
        if version is not None:
            headers[VERSION_HEADER] = version.encode()
        # The protocol's body without that header is JSON, which KServe parses only as JSON
        # when told so (tritonclient's JSON requests name no content type).
        declared = headers.get(BINARY_HEADER)
        if api == "v2" and rest == "/infer" and declared is None and headers.get(b"content-type") != JSON:
            headers[b"content-type"] = JSON
        if api == "v2" and rest == "/infer" and declared is not None:
            body = await read_body(receive)
            if body is None:  # the client went away
                return None
            try:
                check_binary_request(body, declared)
            except BadRequest as e:
                return await send_json(send, 400, {"error": one_line(str(e))})
            receive = replay([{"type": "http.request", "body": body, "more_body": False}], receive)
        path = f"/{api}/models/{name}{rest}"
        scope = {**scope, "path": path, "raw_path": path.encode(), "headers": list(headers.items())}
        return await self.app(scope, receive, send)

    @staticmethod
    def answer_get(api: str, rest: str, served: LoadedExport | None, name: str) -> dict | None:
        """The GET answers that KServe's routes do not give as the protocols write them."""
        if api == "v1" and rest == "":
            return v1_status(served, name)
        if served is None:
            return None  # not loaded yet: KServe's own answer
        if api == "v1":
            return v1_metadata(served, name)
        if rest == "":
            return v2_metadata(served, name)
        return {"name": name, "ready": True}


def version_refusal(name: str, served: LoadedExport | None, version: str | None) -> str | None:
    """Why a request that names `version` (None: names none) is not answered by `served`, the
    version being served: the one check of the version pin, on every path of both protocols."""
    if version is None or version == "" or (served is not None and str(served.version) == version):
        return None
    return f"model {name!r} has no version {version!r} loaded" + (
        f"; it serves version {served.version}" if served is not None else ""
    )


def served_number(served: LoadedExport | None) -> str:
    return str(served.version) if served is not None else "N"
