"""The HTTP server: request parsing, and scripts/serve.py as a real process answering real HTTP
on 127.0.0.1 (TF Serving's REST API through KServe), with new versions picked up while it runs."""

import json
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from helpers import clean_env

from experiments.serve_load import free_port, post, row_request, run_load, start_server, wait_ready
from keras_models.config import Config
from keras_models.export import export_saved_model, load_saved_model
from keras_models.models import build_model
from keras_models.serving import MAX_BODY_BYTES, BadRequest, parse_request

POLL = 0.5


@pytest.mark.parametrize("port", ["0", "70000", "-1", "http"])
def test_serve_refuses_a_port_outside_the_range_before_loading(port, tmp_path, capsys):
    from keras_models.cli import serve

    with pytest.raises(SystemExit) as stop:
        serve.main([str(tmp_path / "no-such-model"), "--http-port", port])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        stop.value.code == 2
        and err[-1] == f"serve.py: error: argument --http-port: expected a TCP port in 1-65535, got {port!r}"
    )


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
    "body, message",
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
    assert message in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def pool(embedded):
    """Pairs of real MNIST test digits."""
    from keras_models.data import make_pairs

    _, test = embedded
    return make_pairs(test.images, test.labels, 300, np.random.default_rng(5)).x


def tiny_model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(Config(model="cnn_aux", filters=(4, 8), hidden=(16,), comparer_type="expected"), 33.0, 80.0**2)


def in_process(path, pairs):
    import tensorflow as tf

    _, signature = load_saved_model(path)
    return {k: v.numpy() for k, v in signature(pair=tf.constant(pairs)).items()}


def same(answer: dict, expected: dict, atol=1e-6) -> bool:
    got = {k: np.array([p[k] for p in answer["predictions"]]) for k in expected}
    return all(np.allclose(got[k], expected[k], atol=atol) for k in expected)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    first = export_saved_model(tiny_model(1), root / "saved_models", "cnn_aux")
    port = free_port()
    log = root / "server.log"
    proc = start_server(first.parent, port, log, "--poll-seconds", str(POLL), cwd=root, env=clean_env())
    url = f"http://127.0.0.1:{port}/v1/models/cnn_aux"
    try:
        wait_ready(url, proc)
        yield {"root": root, "base": first.parent, "url": url, "proc": proc, "log": log}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


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


@pytest.mark.slow
def test_the_readme_request_and_the_columnar_one_match_the_savedmodel(server, pool):
    expected = in_process(server["base"] / "1", pool[:3])
    status, answer = post(server["url"] + ":predict", row_request(pool[:3]))
    assert status == 200 and set(answer["predictions"][0]) == {"compare", "digit1", "digit2"}
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
    status, answer = post(server["url"].replace("cnn_aux", "unknown") + ":predict", good)
    assert status == 404
    status, after = post(predict, good)
    assert status == 200 and after == before
    assert server["proc"].poll() is None


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
    assert any(same(answer, v1) for _, answer in seen) and same(seen[-1][1], v2)
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
    assert stats["requests"] == 2000 and stats["pairs_per_s"] > 0


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
    assert response.status == 200 and len(reply["outputs"]["compare"]) == len(big)
    assert server["proc"].wait(timeout=60) == 0
    assert "Traceback" not in server["log"].read_text()
