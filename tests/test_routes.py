"""Every model path of TF Serving's REST API and of the Open Inference Protocol, with and without a
version: the middleware's decisions on their own, then a real server answering real clients."""

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import in_process

from keras_models.serving.loaded import LoadedExport
from keras_models.serving.local_server import post, row_request
from keras_models.serving.routes import VERSION_HEADER, ProtocolRoutes, path_parts
from keras_models.serving.runtimes import RUNTIMES

OUTPUTS = ("compare", "digit1", "digit2")


def call(method: str, path: str, served=3, models=("cnn_aux",)):
    """ProtocolRoutes' answer to one request: (status, body, headers), or what it passed on to
    the app behind it, as ("passed", path, headers)."""
    runtime = RUNTIMES["tensorflow"]
    export = None if served is None else LoadedExport(Path(f"base/{served}"), runtime, None, OUTPUTS, {})
    sent, passed = [], []

    async def app(scope, receive, send):
        passed.append(scope)

    async def send(message):
        sent.append(message)

    def lookup(name):
        if name not in models:
            raise KeyError(name)
        return export

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "headers": []}
    asyncio.run(ProtocolRoutes(app, lookup)(scope, None, send))
    if passed:
        return "passed", passed[0]["path"], dict(passed[0]["headers"])
    return sent[0]["status"], json.loads(sent[1]["body"]), dict(sent[0]["headers"])


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/v1/models/cnn_aux", ("v1", "cnn_aux", None, None, "")),
        ("/v1/models/cnn_aux/versions/3:predict", ("v1", "cnn_aux", "3", None, ":predict")),
        ("/v1/models/cnn_aux/labels/stable/metadata", ("v1", "cnn_aux", None, "stable", "/metadata")),
        ("/v2/models/cnn_aux/versions/3/ready", ("v2", "cnn_aux", "3", None, "/ready")),
        ("/v2/models/cnn_aux/infer", ("v2", "cnn_aux", None, None, "/infer")),
        ("/v2/models/cnn_aux", ("v2", "cnn_aux", None, None, "")),
        # V2 names and versions may hold a colon (a case schemathesis found answered 501).
        ("/v2/models/a:b/versions/c:d/ready", ("v2", "a:b", "c:d", None, "/ready")),
    ],
)
def test_the_paths_of_both_protocols_are_read_alike(path, parts):
    assert path_parts(path) == parts


@pytest.mark.parametrize(
    ("path", "unversioned"),
    [
        ("/v1/models/cnn_aux/versions/3:predict", "/v1/models/cnn_aux:predict"),
        ("/v2/models/cnn_aux/versions/3/infer", "/v2/models/cnn_aux/infer"),
    ],
)
def test_a_version_served_is_passed_on_unversioned_with_the_version_to_hold_to(path, unversioned):
    status, passed_path, headers = call("POST", path)
    assert (status, passed_path) == ("passed", unversioned)
    assert headers[VERSION_HEADER] == b"3"
    # Without a version: passed on as it came, held to no version.
    status, passed_path, headers = call("POST", unversioned)
    assert (status, passed_path) == ("passed", unversioned)
    assert VERSION_HEADER not in headers


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("POST", "/v1/models/cnn_aux/versions/2:predict", 404, "no version '2' loaded; it serves version 3"),
        ("GET", "/v2/models/cnn_aux/versions/4/ready", 404, "no version '4' loaded"),
        ("GET", "/v2/models/cnn_aux/versions/latest", 404, "no version 'latest' loaded"),
        ("POST", "/v2/models/other/infer", 404, "model 'other' is not served here"),
        ("GET", "/v1/models/other/versions/3", 404, "model 'other' is not served here"),
        ("GET", "/v1/models/cnn_aux/labels/stable", 404, "no version labels; name a version, /versions/3"),
        ("POST", "/v1/models/cnn_aux/labels/stable:predict", 404, "no version labels"),
        ("POST", "/v1/models/cnn_aux/versions/3:classify", 400, "is a predict signature; use :predict"),
        ("POST", "/v1/models/cnn_aux:regress", 400, "is a predict signature"),
        ("GET", "/v1/models/cnn_aux/versions/3:predict", 405, "takes POST"),
        ("GET", "/v2/models/cnn_aux/versions/3/infer", 405, "takes POST"),
        ("POST", "/v1/models/cnn_aux/metadata", 405, "takes GET"),
        ("DELETE", "/v2/models/cnn_aux", 405, "takes GET"),
        # Found by schemathesis (tests/test_conformance.py): KServe answered 501 for these.
        ("GET", "/v2/models/cnn_aux/versions/c:d/ready", 404, "no version 'c:d' loaded"),
        ("GET", "/v2/models/x\ny/versions/1", 404, "model 'x\\ny' is not served here"),
    ],
)
def test_refusals_are_one_line_with_the_protocols_status(method, path, status, says):
    got, body, headers = call(method, path)
    assert (got, list(body)) == (status, ["error"])
    assert says in body["error"]
    assert "\n" not in body["error"]
    if status == 405:
        assert headers[b"allow"] in (b"GET", b"POST")


def test_status_and_metadata_with_and_without_the_version():
    for prefix in ("/v1/models/cnn_aux", "/v1/models/cnn_aux/versions/3"):
        status, body, _ = call("GET", prefix)
        assert status == 200
        assert body["model_version_status"] == [
            {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
        status, meta, _ = call("GET", prefix + "/metadata")
        assert status == 200
        assert meta["model_spec"] == {"name": "cnn_aux", "signature_name": "", "version": "3"}
        signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert signature["method_name"] == "tensorflow/serving/predict"
        dims = [int(d["size"]) for d in signature["inputs"]["pair"]["tensor_shape"]["dim"]]
        assert dims == [-1, 2, 14, 14]
        assert {k: v["dtype"] for k, v in signature["outputs"].items()} == dict.fromkeys(OUTPUTS, "DT_FLOAT")
    for prefix in ("/v2/models/cnn_aux", "/v2/models/cnn_aux/versions/3"):
        assert call("GET", prefix)[1]["versions"] == ["3"]
        assert call("GET", prefix + "/ready")[:2] == (200, {"name": "cnn_aux", "ready": True})
    # While the first version loads, the status says not ready and a version path finds nothing.
    assert call("GET", "/v1/models/cnn_aux", served=None)[:2] == (200, {"name": "cnn_aux", "ready": False})
    assert call("GET", "/v2/models/cnn_aux/versions/3/ready", served=None)[0] == 404


def test_a_clients_text_in_an_error_is_escaped_to_one_line():
    from keras_models.serving.protocol import one_line

    assert one_line("key a\nb\u2028c\x1e, é") == "key a\\nb\\u2028c\\x1e, é"


def test_paths_outside_the_protocols_pass_on_to_kserve():
    for method, path in (("GET", "/v2/health/ready"), ("GET", "/"), ("POST", "/v1/models/cnn_aux/no/such/path")):
        assert call(method, path)[0] == "passed"


# --------------------------------------------------------------------------- a real server


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_every_path_answers_the_served_version_and_404_for_another(server, pool):
    root = f"http://{server['http']}"
    expected = in_process(server["base"] / "1", pool[:4])
    for version, code in (("1", 200), ("9", 404)):
        for path in (
            f"/v1/models/cnn_aux/versions/{version}",
            f"/v1/models/cnn_aux/versions/{version}/metadata",
            f"/v2/models/cnn_aux/versions/{version}",
            f"/v2/models/cnn_aux/versions/{version}/ready",
        ):
            status, body = get(root + path)
            assert status == code, (path, body)
        status, answer = post(f"{root}/v1/models/cnn_aux/versions/{version}:predict", row_request(pool[:4]))
        assert status == code, answer
        if code == 200:
            got = np.array([p["compare"] for p in answer["predictions"]])
            np.testing.assert_allclose(got, expected["compare"], atol=1e-6)
        body = {
            "inputs": [{"name": "pair", "shape": [4, 2, 14, 14], "datatype": "FP32", "data": pool[:4].ravel().tolist()}]
        }
        status, answer = post(f"{root}/v2/models/cnn_aux/versions/{version}/infer", body)
        assert status == code, answer
        if code == 200:
            assert answer["model_version"] == "1"
            (compare,) = [o["data"] for o in answer["outputs"] if o["name"] == "compare"]
            np.testing.assert_allclose(compare, expected["compare"].ravel(), atol=1e-6)
    assert get(root + "/v1/models/cnn_aux/metadata")[1]["model_spec"]["version"] == "1"
    assert get(root + "/v2/models/unknown/versions/1/ready") == (404, {"error": "model 'unknown' is not served here"})


@pytest.mark.slow
@pytest.mark.parametrize("client", ["http", "grpc"])
def test_tritonclient_pins_the_version_and_reads_versions_and_platform(server, pool, client):
    """The Open Inference Protocol's own client, REST and gRPC: metadata with `versions` and
    `platform`, readiness and inference of version 1, and NOT_FOUND for version 9."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    lib = grpc if client == "grpc" else http
    c = lib.InferenceServerClient(server[client])
    meta = c.get_model_metadata("cnn_aux", "1", **({"as_json": True} if client == "grpc" else {}))
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "tensorflow_savedmodel"
    assert [i["name"] for i in meta["inputs"]] == ["pair"]
    assert c.is_model_ready("cnn_aux", "1")
    tensor = lib.InferInput("pair", [3, 2, 14, 14], "FP32")
    tensor.set_data_from_numpy(pool[:3])
    result = c.infer("cnn_aux", [tensor], model_version="1")
    np.testing.assert_allclose(
        result.as_numpy("compare"), in_process(server["base"] / "1", pool[:3])["compare"], atol=1e-6
    )
    with pytest.raises(InferenceServerException) as e:
        c.infer("cnn_aux", [tensor], model_version="9")
    assert e.value.status() in ("404", "StatusCode.NOT_FOUND")
    with pytest.raises(InferenceServerException):
        c.get_model_metadata("cnn_aux", "9")


BAD_BODIES = {
    "not JSON": b"{bad",
    "not an object": b"[1, 2]",
    "no inputs": b'{"id": "x"}',
    "inputs of the wrong type": b'{"inputs": "pair", "instances": 3}',
    "wrong shape": json.dumps({"inputs": [[1.0, 2.0]]}).encode(),
    "NaN": json.dumps({"inputs": np.full((1, 2, 14, 14), np.nan).tolist()}).encode(),
    # Found by schemathesis: FastAPI's message echoed this key, newline and all.
    "a key with a newline": json.dumps(
        {"inputs": [{"name": "pair", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"a\nb": {"c": 1}}}]}
    ).encode(),
}


@pytest.mark.slow
def test_each_bad_body_on_each_inference_path_is_400_in_one_line(server):
    root = f"http://{server['http']}"
    paths = (
        "/v1/models/cnn_aux:predict",
        "/v1/models/cnn_aux/versions/1:predict",
        "/v2/models/cnn_aux/infer",
        "/v2/models/cnn_aux/versions/1/infer",
    )
    for path in paths:
        for kind, body in BAD_BODIES.items():
            for headers in ({}, {"content-type": "application/json"}):
                status, answer = post(root + path, body, headers=headers)
                assert (status, list(answer)) == (400, ["error"]), (path, kind, headers, answer)
                assert "\n" not in answer["error"]
    # GET paths refuse a POST, and no path of either protocol answers 422, 500 or 501.
    for path in ("/v1/models/cnn_aux/versions/1", "/v1/models/cnn_aux/metadata", "/v2/models/cnn_aux/versions/1/ready"):
        status, answer = post(root + path, b"{}")
        assert (status, list(answer)) == (405, ["error"])
    assert "Traceback" not in server["log"].read_text()
