"""The server's promises (docs/GUIDE.md, Reliability), each against a real serve.py on 127.0.0.1:
no route switches a model off; a version is served only when all of it loads and answers; a
removed version falls back to the highest left; every fault of a request is one line and a 4xx,
with no traceback in the log; one log line per request; a stalled body is dropped."""

import json
import shutil
import socket
import time

import numpy as np
import pytest
from helpers import POLL, clean_env, tiny_model, wait_for

from keras_models.serving.export import METADATA, export_saved_model
from keras_models.serving.local_server import free_port, post, row_request, start_server, wait_ready


@pytest.fixture(scope="module")
def versions_server(tmp_path_factory):
    """A server of its own, whose versions the tests add and remove."""
    root = tmp_path_factory.mktemp("versions")
    first = export_saved_model(tiny_model(1), root / "saved_models", "cnn_aux")
    port = free_port()
    log = root / "server.log"
    flags = ("--poll-seconds", str(POLL), "--host", "127.0.0.1", "--body-timeout", "2")
    proc = start_server(first.parent, port, log, *flags, cwd=root, env=clean_env())
    url = f"http://127.0.0.1:{port}/v1/models/cnn_aux"
    try:
        wait_ready(url, proc)
        yield {"root": root, "base": first.parent, "url": url, "port": port, "log": log, "proc": proc}
    finally:
        proc.kill()
        proc.wait()


def get(url: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def served_version(url: str) -> str | None:
    status, answer = get(url)
    return answer["model_version_status"][0]["version"] if status == 200 and "model_version_status" in answer else None


def add_version(server, version: int, seed: int, card: str | None = None) -> None:
    """A version written beside the base path and renamed into place, as an export writes one."""
    staging = server["root"] / f"staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    made = export_saved_model(tiny_model(seed), staging, "cnn_aux")
    if card is not None:
        (made / METADATA).write_text(card)
    made.rename(server["base"] / str(version))


@pytest.mark.slow
def test_no_request_switches_the_model_off_and_readiness_stays_true(versions_server, pool):
    root, url = f"http://127.0.0.1:{versions_server['port']}", versions_server["url"]
    for action in ("unload", "load"):
        status, answer = post(f"{root}/v2/repository/models/cnn_aux/{action}", b"{}")
        assert status == 404
        assert "not loaded or unloaded by request" in answer["error"]
    status, _ = post(url + ":predict", row_request(pool[:2]))
    assert status == 200
    assert get(f"{root}/v2/health/ready")[0] == 200
    assert get(f"{root}/v2/models/cnn_aux/ready")[0] == 200


@pytest.mark.slow
def test_a_version_with_a_wrong_card_is_never_served(versions_server, pool):
    url = versions_server["url"]
    before = served_version(url)
    for version, card in ((int(before) + 1, "[1, 2]"), (int(before) + 2, '{"pixel_range": null}')):
        add_version(versions_server, version, 5, card)
    time.sleep(6 * POLL)
    assert served_version(url) == before
    status, answer = post(url + ":predict", row_request(pool[:2]))
    assert status == 200, answer
    log = versions_server["log"].read_text()
    assert "skipping version" in log
    assert "not a model card" in log
    assert "Traceback" not in log
    for version in (int(before) + 1, int(before) + 2):
        shutil.rmtree(versions_server["base"] / str(version))


@pytest.mark.slow
def test_a_removed_version_falls_back_to_the_highest_left_and_says_so(versions_server, pool):
    url, base = versions_server["url"], versions_server["base"]
    low = int(served_version(url))
    add_version(versions_server, low + 10, 6)
    wait_for(lambda: served_version(url) == str(low + 10))
    shutil.rmtree(base / str(low + 10))
    wait_for(lambda: served_version(url) == str(low))
    status, _ = post(f"{url}/versions/{low}:predict", row_request(pool[:2]))
    assert status == 200
    assert f"version {low + 10} was removed; serving cnn_aux version {low}" in versions_server["log"].read_text()
    # With every version gone the model is not ready, and answers so; a new one is served again.
    shutil.move(base / str(low), versions_server["root"] / "parked")
    wait_for(lambda: get(url)[1].get("ready") is False)
    status, answer = post(url + ":predict", row_request(pool[:2]))
    assert status == 503, answer
    assert get(f"http://127.0.0.1:{versions_server['port']}/v2/models/cnn_aux/ready")[0] == 503
    shutil.move(versions_server["root"] / "parked", base / str(low + 20))
    wait_for(lambda: served_version(url) == str(low + 20))
    assert post(url + ":predict", row_request(pool[:2]))[0] == 200


def binary_request(pairs: np.ndarray, header_length=None, size=None, shape=None) -> tuple[bytes, dict]:
    """A V2 request in the binary tensor extension, with parts of its framing replaced."""
    data = pairs.astype(np.float32).tobytes()
    parameters = {"binary_data_size": len(data) if size is None else size}
    tensor = {"name": "pair", "datatype": "FP32", "shape": list(shape or pairs.shape), "parameters": parameters}
    header = json.dumps({"inputs": [tensor]}).encode()
    declared = str(len(header)) if header_length is None else header_length
    return header + data, {"Inference-Header-Content-Length": declared, "content-type": "application/octet-stream"}


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tensorflow", "onnx"])
def test_lying_binary_headers_are_400_in_one_line(server, pool, runtime, tmp_path):
    target = server
    if runtime == "onnx":  # a second server, answering with ONNX Runtime
        port = free_port()
        log = tmp_path / "onnx.log"
        proc = start_server(server["base"], port, log, "--runtime", "onnx", "--host", "127.0.0.1", env=clean_env())
        target = {"http": f"127.0.0.1:{port}", "log": log, "proc": proc}
        wait_ready(f"http://{target['http']}/v1/models/cnn_aux", proc)
    try:
        infer = f"http://{target['http']}/v2/models/cnn_aux/infer"
        pairs = pool[:2]
        cases = {
            "header length not a number": binary_request(pairs, header_length="ten"),
            "header length beyond the body": binary_request(pairs, header_length="99999"),
            "binary_data_size 0": binary_request(pairs, size=0),
            "binary_data_size negative": binary_request(pairs, size=-8),
            "binary_data_size short of the data": binary_request(pairs, size=100),
            "shape that is not the bytes": binary_request(pairs, shape=[3, 2, 14, 14]),
            "negative batch": binary_request(pairs, shape=[-1, 2, 14, 14]),
        }
        for case, (body, headers) in cases.items():
            status, answer = post(infer, body, headers=headers)
            assert status == 400, (case, answer)
            assert "\n" not in answer["error"]
        body, headers = binary_request(pairs)
        status, answer = post(infer, body, headers=headers)
        assert status == 200, answer
        assert "Traceback" not in target["log"].read_text()
    finally:
        if target is not server:
            target["proc"].kill()
            target["proc"].wait()


@pytest.mark.slow
def test_other_paths_and_bodies_are_one_line_4xx(server, pool):
    root, url = f"http://{server['http']}", server["url"]
    status, answer = post(url + ":explain", {"instances": []})
    assert (status, ":predict only" in answer["error"]) == (404, True)
    huge = b"9" * 400  # a 400-digit integer: beyond float32
    status, answer = post(f"{root}/demo/pair", b'{"digits": [[[' + huge + b"]], [[1]]]}")
    assert (status, list(answer)) == (400, ["error"])
    status, answer = post(url + ":predict", b'"x"', headers={"content-type": "application/json"})
    assert status == 400
    assert answer["error"] == "the body must be a JSON object with `instances` or `inputs`, got a string"
    status, answer = post(f"{root}/v2/models/cnn_aux/infer", b'{"inputs": [{"name": "pair"')
    assert status == 400
    assert answer["error"].startswith("the body is not valid JSON (")
    v2 = {"inputs": [{"name": "pair", "datatype": "FP32", "shape": [-1, 2, 14, 14], "data": pool[:1].ravel().tolist()}]}
    status, answer = post(f"{root}/v2/models/cnn_aux/infer", v2)
    assert status == 400
    assert "must have shape (N, 2, 14, 14), got [-1, 2, 14, 14]" in answer["error"]
    v2["inputs"][0]["shape"] = [1, 2, 14, 14]
    v2["outputs"] = [{"name": "digit3"}]
    status, answer = post(f"{root}/v2/models/cnn_aux/infer", v2)
    assert status == 400
    assert "unknown output(s) ['digit3']" in answer["error"]
    assert "Traceback" not in server["log"].read_text()


@pytest.mark.slow
def test_one_log_line_per_request_and_none_with_request_log_none(versions_server, pool, tmp_path):
    log, url = versions_server["log"], versions_server["url"]
    before = len(log.read_text().splitlines())
    for _ in range(3):
        assert post(url + ":predict", row_request(pool[:2]))[0] == 200
    time.sleep(0.5)
    assert len(log.read_text().splitlines()) - before == 3

    port = free_port()
    quiet_log = tmp_path / "quiet.log"
    flags = ("--host", "127.0.0.1", "--request-log", "none")
    proc = start_server(versions_server["base"], port, quiet_log, *flags, env=clean_env())
    try:
        quiet = f"http://127.0.0.1:{port}/v1/models/cnn_aux"
        wait_ready(quiet, proc)
        before = len(quiet_log.read_text().splitlines())
        for _ in range(3):
            assert post(quiet + ":predict", row_request(pool[:2]))[0] == 200
        time.sleep(0.5)
        assert len(quiet_log.read_text().splitlines()) == before
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_stalled_body_is_dropped_and_a_client_that_hangs_up_leaves_no_traceback(versions_server):
    head = b'POST /v1/models/cnn_aux:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inst'
    seen = len(versions_server["log"].read_text())
    with socket.create_connection(("127.0.0.1", versions_server["port"]), timeout=20) as stalled:
        stalled.sendall(head)
        start = time.monotonic()
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - start < 10  # --body-timeout 2
        while stalled.recv(4096):  # the server closes the connection
            pass
    with socket.create_connection(("127.0.0.1", versions_server["port"]), timeout=20) as gone:
        gone.sendall(head)
    time.sleep(1.0)
    log = versions_server["log"].read_text()[seen:]
    assert "Traceback" not in log
    assert "ClientDisconnect" not in log
    assert " ERROR " not in log
