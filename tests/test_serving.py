"""The HTTP server: request parsing, and scripts/serve.py as a real process answering real HTTP
on 127.0.0.1 (TF Serving's REST API through KServe), with new versions picked up while it runs."""

import contextlib
import json
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from helpers import POLL, in_process, same, tiny_model

from keras_models.serving.export import export_saved_model
from keras_models.serving.local_server import post, row_request, run_load
from keras_models.serving.protocol import MAX_BODY_BYTES, BadRequest, parse_request


@pytest.mark.parametrize("port", ["0", "70000", "-1", "http"])
def test_serve_refuses_a_port_outside_the_range_before_loading(port, tmp_path, capsys):
    from keras_models.cli import serve

    with pytest.raises(SystemExit) as stop:
        serve.main([str(tmp_path / "no-such-model"), "--http-port", port])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2
    # One line, argparse's error without its usage block.
    assert err == [
        f"serve.py: error: argument --http-port: expected a TCP port in 1-65535, got {port!r} (see serve.py --help)"
    ]


@pytest.mark.parametrize("name", ['a"b', "a/b", "-x", "</script>"])
def test_a_model_name_that_cannot_be_a_url_segment_is_refused_at_start(name, tmp_path, capsys):
    from keras_models.cli import serve

    base = export_saved_model(tiny_model(1), tmp_path, "cnn_aux").parent
    assert serve.main([str(base), f"--model-name={name}", "--http-port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert "use letters, digits" in err


def test_a_file_given_as_the_base_path_is_called_a_file(tmp_path, capsys):
    from keras_models.cli import serve

    (tmp_path / "model.keras").write_text("x")
    assert serve.main([str(tmp_path / "model.keras")]) == 2
    assert "model.keras: a file; give the folder of numbered versions" in capsys.readouterr().err


def test_the_host_patch_is_checked_against_the_installed_kserve():
    """serve.py --host sets the address of KServe's REST server through its private
    `_rest_server`, made in ModelServer.start before setup_event_loop (kserve/kserve#4558).
    Read in a fresh process: KServe's protos clash with tritonclient's in one process."""
    from helpers import run_python

    code = (
        "import inspect, kserve; from importlib.metadata import version\n"
        "from keras_models.serving.server import KSERVE_TESTED\n"
        "start = inspect.getsource(kserve.ModelServer.start)\n"
        "from kserve.protocol.grpc import server as g\n"
        "grpc_start = inspect.getsource(g.GRPCServer.start)\n"
        "print(version('kserve') == KSERVE_TESTED, "
        "start.index('self._rest_server = RESTServer(') < start.index('self.setup_event_loop()'), "
        "'inference_servicer = InferenceServicer(' in grpc_start)\n"
    )
    proc = run_python(["-c", code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "True True True"


def test_a_host_for_several_workers_and_a_grpc_port_out_of_range_are_one_line(tmp_path, capsys):
    from keras_models.cli import serve

    (tmp_path / "cnn_aux" / "1").mkdir(parents=True)
    assert serve.main([str(tmp_path / "cnn_aux"), "--host", "127.0.0.1", "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "serve.py: error: --host binds one server process; with --workers above 1 KServe binds all interfaces"
    )
    with pytest.raises(SystemExit):
        serve.main([str(tmp_path / "cnn_aux"), "--grpc-port", "0"])
    assert "--grpc-port: expected a TCP port in 1-65535" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port"])
def test_a_port_in_use_is_one_line_before_the_model_loads(tmp_path, capsys, flag):
    """A listener as gRPC makes one (SO_REUSEPORT, which would let a second server share it)."""
    import socket

    from keras_models.cli import serve
    from keras_models.serving.local_server import free_ports

    (tmp_path / "cnn_aux" / "1").mkdir(parents=True)  # no loadable version: loading would fail otherwise
    taken, other = free_ports(2)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("0.0.0.0", taken))
        listener.listen()
        ports = {"--http-port": taken, "--grpc-port": other} if flag == "--http-port" else {"--http-port": other}
        argv = [str(tmp_path / "cnn_aux"), *[str(v) for kv in ports.items() for v in kv]]
        if flag == "--grpc-port":
            argv += ["--grpc-port", str(taken)]
        assert serve.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"serve.py: error: {flag} {taken}: 0.0.0.0:{taken} is in use (Address already in use); give another port"
    )
    assert serve.main([str(tmp_path / "cnn_aux"), "--http-port", str(other), "--grpc-port", str(other)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"are both {other}; give each its own port")


def test_both_request_formats_give_the_same_pairs():
    x = np.arange(2 * 2 * 14 * 14, dtype=np.float32).reshape(2, 2, 14, 14)
    rows, columnar = parse_request(row_request(x))
    np.testing.assert_array_equal(rows, x)
    assert not columnar
    for body in ({"inputs": {"pair": x.tolist()}}, {"inputs": x.tolist()}, json.dumps({"inputs": x.tolist()}).encode()):
        pairs, columnar = parse_request(body)
        np.testing.assert_array_equal(pairs, x)
        assert columnar
    np.testing.assert_array_equal(parse_request({"instances": x.tolist()})[0], x)  # plain rows


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{bad", "not valid JSON"),
        ({"signature_name": "other", "instances": []}, "unknown signature_name"),
        ({"pairs": []}, "exactly one of"),
        ({"instances": [], "inputs": []}, "exactly one of"),
        ({"instances": []}, "non-empty list"),
        ({"instances": [{"image": []}]}, "the one input `pair`"),
        ({"instances": [[1, 2]]}, "pairs must have shape (N, 2, 14, 14), got (1, 2)"),
        ({"inputs": [[[[1] * 14] * 14] * 2, [[[1] * 14] * 13] * 2]}, "ragged"),
        ({"inputs": [[[["a"] * 14] * 14] * 2]}, "pairs must be real numbers"),
        ({"inputs": [[[[None] * 14] * 14] * 2]}, "pairs must be real numbers"),
        ({"inputs": [[[[float("nan")] * 14] * 14] * 2]}, "NaN or infinite"),
        ({"inputs": [[[[1e39] * 14] * 14] * 2]}, "beyond float32"),
    ],
)
def test_bad_requests_are_one_line_reasons(body, message):
    with pytest.raises(BadRequest) as e:
        parse_request(body)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- the real server


def oversized(url: str) -> int:
    """The status answered to a POST that declares a body over the limit (and sends none)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("POST", parts.path)
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def chunked_oversized(url: str) -> int:
    """The status of a POST whose body, sent in chunks with no declared length, outgrows the limit."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    chunk = b" " * (1 << 20)
    chunks = (chunk for _ in range(MAX_BODY_BYTES // len(chunk) + 2))
    # The server may answer, and close, before the body ends.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        conn.request("POST", parts.path, body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.slow
def test_the_readme_request_and_the_columnar_one_match_the_savedmodel(server, pool):
    expected = in_process(server["base"] / "1", pool[:3])
    status, answer = post(server["url"] + ":predict", row_request(pool[:3]))
    assert status == 200
    assert set(answer["predictions"][0]) == {"compare", "digit1", "digit2"}
    assert same(answer, expected)
    status, answer = post(server["url"] + ":predict", {"inputs": {"pair": pool[:3].tolist()}})
    assert status == 200
    for k in expected:
        np.testing.assert_allclose(answer["outputs"][k], expected[k], atol=1e-6)


@pytest.mark.slow
def test_bad_requests_get_400_and_the_server_keeps_answering_the_same(server, pool):
    predict = server["url"] + ":predict"
    good = row_request(pool[:4])
    _, before = post(predict, good)
    bad = [
        (b"{bad", {}, 400),  # malformed JSON, sent as curl -d sends it
        (b"{bad", {"content-type": "application/json"}, 400),
        (b'{"signature_name": "serving_default"}', {}, 400),  # neither instances nor inputs
        (json.dumps({"instances": pool[:2, 0].tolist()}).encode(), {}, 400),  # wrong shape
        (b'{"instances": [{"pair": "seven"}]}', {}, 400),  # not numbers
        (json.dumps({"inputs": np.full((1, 2, 14, 14), np.nan).tolist()}).encode(), {}, 400),  # NaN
        (json.dumps({"inputs": np.full((1, 2, 14, 14), np.inf).tolist()}).encode(), {}, 400),  # infinite
        (b'{"instances": []}', {}, 400),  # empty
    ]
    for body, headers, code in bad:
        status, answer = post(predict, body, headers=headers)
        assert status == code, (body[:60], status, answer)
        assert "\n" not in answer["error"]
    assert oversized(predict) == 413  # refused from its declared length, before a byte is read
    # Every client error in one form, {"error": one line}: a V2 body FastAPI cannot validate is
    # 400 (not 422 with pydantic's list), :classify names the predict signature, a wrong path 404.
    v2 = server["url"].replace("/v1/", "/v2/")
    for url, body, code in (
        (v2 + "/infer", {"id": "no inputs"}, 400),
        (v2 + "/infer", {"inputs": "pair"}, 400),
        (server["url"] + ":classify", good, 400),
        (server["url"] + ":regress", good, 400),
        (server["url"] + "/no/such/path", good, 404),
    ):
        status, answer = post(url, body)
        assert (status, list(answer)) == (code, ["error"]), (url, status, answer)
        assert "\n" not in answer["error"]
    assert "predict signature" in post(server["url"] + ":classify", good)[1]["error"]
    # Refused once the chunks pass the limit, on V1 and on V2, whose body FastAPI parses.
    assert chunked_oversized(predict) == 413
    assert chunked_oversized(server["url"].replace("/v1/", "/v2/") + "/infer") == 413
    status, answer = post(server["url"].replace("cnn_aux", "unknown") + ":predict", good)
    assert status == 404
    status, after = post(predict, good)
    assert status == 200
    assert after == before
    assert server["proc"].poll() is None


def served_version(server) -> str:
    status = json.loads(urllib.request.urlopen(server["url"], timeout=30).read())
    (entry,) = status["model_version_status"]
    assert status["ready"]
    assert entry["state"] == "AVAILABLE"
    return entry["version"]


@pytest.mark.slow
def test_status_and_v2_metadata_name_the_served_version_and_the_contract(server):
    version = served_version(server)
    meta = json.loads(urllib.request.urlopen(server["url"].replace("/v1/", "/v2/"), timeout=30).read())
    assert meta["versions"] == [version]
    assert meta["name"] == "cnn_aux"
    assert meta["inputs"] == [{"name": "pair", "datatype": "FP32", "shape": [-1, 2, 14, 14]}]
    assert meta["outputs"] == [
        {"name": "compare", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "digit1", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "digit2", "datatype": "FP32", "shape": [-1, 10]},
    ]
    assert f"Uvicorn running on http://{server['http']}" in server["log"].read_text()  # --host


@pytest.mark.slow
@pytest.mark.parametrize("path", [":predict", ":infer", "/infer"])
def test_get_on_a_verb_is_405(server, path):
    url = server["url"] + path if path.startswith(":") else server["url"].replace("/v1/", "/v2/") + path
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)
    assert e.value.code == 405
    assert e.value.headers["allow"] == "POST"


@pytest.mark.slow
@pytest.mark.parametrize("client", ["http-json", "http-binary", "grpc"])
def test_the_inference_protocols_client_gets_the_savedmodels_answers(server, pool, client):
    """tritonclient, the Open Inference Protocol's own client, over REST (JSON tensors and the
    binary tensor extension) and gRPC: the answers of the in-process SavedModel, within 1e-6."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    pairs = pool[:7]
    lib = grpc if client == "grpc" else http
    binary = client != "http-json"
    with_version = served_version(server)
    c = lib.InferenceServerClient(server[client.split("-")[0]])
    tensor = lib.InferInput("pair", list(pairs.shape), "FP32")
    tensor.set_data_from_numpy(pairs, **({} if client == "grpc" else {"binary_data": binary}))
    outputs = [
        lib.InferRequestedOutput(k, **({} if client == "grpc" else {"binary_data": binary}))
        for k in ("compare", "digit1", "digit2")
    ]
    result = c.infer("cnn_aux", [tensor], outputs=outputs)
    expected = in_process(server["base"] / with_version, pairs)
    for k in expected:
        np.testing.assert_allclose(result.as_numpy(k), expected[k], atol=1e-6)
    assert result.get_response(**({"as_json": True} if client == "grpc" else {}))["model_version"] == with_version


@pytest.mark.slow
def test_bad_v2_tensors_are_refused_in_one_line_and_later_answers_are_unchanged(server, pool):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    c = http.InferenceServerClient(server["http"])

    def ask(name, array, datatype="FP32"):
        tensor = http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=False)
        return c.infer("cnn_aux", [tensor])

    before = ask("pair", pool[:3]).as_numpy("compare")
    for name, array, datatype, message in (
        ("pair", pool[:2, :, :13], "FP32", "must have shape (N, 2, 14, 14)"),
        ("pair", pool[:2].astype(np.int32), "INT32", "must be FP32"),
        ("image", pool[:2], "FP32", "the input must be `pair`"),
        ("pair", np.full((1, 2, 14, 14), np.nan, np.float32), "FP32", "NaN or infinite"),
        ("pair", np.zeros((0, 2, 14, 14), np.float32), "FP32", "holds no pairs"),
    ):
        with pytest.raises(InferenceServerException) as e:
            ask(name, array, datatype)
        assert e.value.status() == "400"
        assert message in e.value.message()
        assert "\n" not in e.value.message()
    np.testing.assert_array_equal(ask("pair", pool[:3]).as_numpy("compare"), before)
    # A client's mistake is logged below ERROR, in one line.
    refused = [line for line in server["log"].read_text().splitlines() if "bad request:" in line]
    assert refused
    assert all(" WARNING " in line for line in refused)


@pytest.mark.slow
def test_a_new_version_is_served_within_the_poll_interval_and_half_written_ones_never(server, pool):
    base, predict = server["base"], server["url"] + ":predict"
    request = row_request(pool[:8])
    v1 = in_process(base / "1", pool[:8])
    seen, stop = [], threading.Event()

    def keep_asking():  # requests in flight across the switch
        while not stop.is_set():
            seen.append(post(predict, request))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        time.sleep(1.0)
        second = export_saved_model(tiny_model(2), base.parent, "cnn_aux")
        exported = time.monotonic()
        v2 = in_process(second, pool[:8])
        assert not same({"predictions": [{k: v1[k][i].tolist() for k in v1} for i in range(8)]}, v2)
        while not same(post(predict, request)[1], v2):
            # The poll interval, plus the time a busy machine takes to load a SavedModel.
            assert time.monotonic() - exported < POLL + 20, "version 2 was not picked up"
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        asker.join()
    assert all(status == 200 for status, _ in seen)
    assert all(same(answer, v1) or same(answer, v2) for _, answer in seen)
    assert any(same(answer, v1) for _, answer in seen)
    assert same(seen[-1][1], v2)
    # Each load and switch is logged with its version, and the status names the one served.
    log = server["log"].read_text()
    assert "serving cnn_aux version 1 from" in log
    assert "serving cnn_aux version 2 from" in log
    assert served_version(server) == "2"
    # An export being written (.tmp-*) and a broken version folder are never served.
    shutil.copytree(base / "1", base / ".tmp-3-12345")
    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"half written")
    time.sleep(4 * POLL)
    assert same(post(predict, request)[1], v2)


@pytest.mark.slow
def test_load_of_eight_clients_is_answered_right(server, pool):
    latest = max(int(p.name) for p in server["base"].iterdir() if p.name.isdigit() and (p / "variables").is_dir())
    expected = in_process(server["base"] / str(latest), pool)

    def check(indices, answer):
        got = np.array([p["compare"] for p in answer["predictions"]])
        return None if np.allclose(got, expected["compare"][indices], atol=1e-6) else f"wrong answer for {indices[:5]}"

    stats = run_load(server["url"] + ":predict", pool, clients=8, requests=2000, max_pairs=100, check=check)
    assert stats["failures"] == 0, stats["first_failures"]
    assert stats["requests"] == 2000
    assert stats["pairs_per_s"] > 0


@pytest.mark.slow
def test_sigterm_answers_the_request_in_flight_then_exits_cleanly(server, pool):
    import http.client
    from urllib.parse import urlsplit

    big = np.repeat(pool, 10, axis=0)  # 3000 pairs, about 8 MB of JSON: seconds of work for the server
    body = json.dumps({"inputs": big.tolist()}).encode()
    url = urlsplit(server["url"] + ":predict")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.request("POST", url.path, body=body, headers={"content-type": "application/json"})
    time.sleep(0.2)  # the whole request is sent: the server is working on it
    server["proc"].send_signal(signal.SIGTERM)
    response = conn.getresponse()
    reply = json.loads(response.read())
    assert response.status == 200
    assert len(reply["outputs"]["compare"]) == len(big)
    assert server["proc"].wait(timeout=60) == 0
    assert "Traceback" not in server["log"].read_text()
