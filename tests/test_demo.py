"""The demo page of serve.py in a real headless Chromium (Debian's, driven by Playwright):
digits drawn with real pointer events are read and answered right, a random MNIST pair is
answered, and the page asks nothing of any other host."""

import json
import urllib.request

import numpy as np
import pytest
from helpers import clean_env

from keras_models.core.errors import DataError
from keras_models.serving.demo import Demo
from keras_models.serving.local_server import free_port, post, start_server, wait_ready

CHROMIUM = "/usr/bin/chromium"
# As the workplace starts Chromium as root, with no network beyond the loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_a_drawing_is_read_as_predict_reads_an_image(embedded):
    from keras_models.serving.predict import digit_from_pixels

    seven = np.kron(embedded[1].images[750], np.ones((8, 8)))  # a real test digit, 112 x 112
    got = Demo("cnn_aux").pair(json.dumps({"digits": [seven.tolist(), seven.tolist()]}).encode())["pair"]
    np.testing.assert_allclose(got, [digit_from_pixels(seven, invert=False)] * 2, atol=1e-4)
    for body, message in (
        (b"{", "must be"),
        (b'{"digits": [[[1]]]}', "two drawings"),
        (json.dumps({"digits": [[[300.0]], [[1.0]]]}).encode(), "0-255"),
        (json.dumps({"digits": [np.zeros((600, 600)).tolist()] * 2}).encode(), "at most 512"),
        (json.dumps({"digits": [np.zeros((50, 50)).tolist()] * 2}).encode(), "blank"),
    ):
        with pytest.raises(DataError, match=message):
            Demo("cnn_aux").pair(body)


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    """cnn_aux with the speedrun's settings for 8 epochs (about 97% on test pairs), exported."""
    from keras_models.cli import train as train_script

    root = tmp_path_factory.mktemp("demo")
    argv = [
        "--model",
        "cnn_aux",
        "--recipe",
        "speedrun",
        "--epochs",
        "8",
        "--out",
        str(root / "run"),
        "--export-dir",
        str(root / "saved_models"),
        "--quiet",
    ]
    assert train_script.main(argv) == 0
    return root / "saved_models" / "cnn_aux"


def stroke(page, box, points):
    """A pen stroke through `points` (fractions of the pad's box), as real pointer events."""
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


@pytest.mark.slow
def test_digits_drawn_in_a_real_browser_are_answered_right(trained_export, tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_server(trained_export, port, tmp_path / "server.log", env=clean_env())
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models/cnn_aux", proc)
        # A drawing that cannot be read is one line and a 400; a client that is no browser still
        # gets KServe's liveness at /.
        status, answer = post(f"http://127.0.0.1:{port}/demo/pair", b'{"digits": [[[1]]]}')
        assert status == 400
        assert answer == {"error": "`digits` must hold two drawings"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert json.loads(r.read())["status"] == "alive"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            asked = []
            page.on("request", lambda r: asked.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/")
            one = page.get_by_test_id("digit1").bounding_box()
            stroke(page, one, [(0.5, 0.15), (0.5, 0.85)])
            seven = page.get_by_test_id("digit2").bounding_box()
            stroke(page, seven, [(0.2, 0.2), (0.8, 0.2), (0.4, 0.85)])  # one stroke: the top bar, then down
            page.wait_for_function("document.body.dataset.answers === '1'")
            assert page.get_by_test_id("digit1-class").inner_text() == "1"
            assert page.get_by_test_id("digit2-class").inner_text() == "7"
            assert float(page.get_by_test_id("compare").inner_text()) > 0.5  # 1 <= 7
            assert "model cnn_aux, version 1" in page.inner_text("#meta")
            # A random pair of test digits is drawn and answered.
            with page.expect_response("**/demo/random") as random:
                page.get_by_test_id("random").click()
            page.wait_for_function("document.body.dataset.answers === '2'")
            classes = random.value.json()["classes"]
            shown = [int(page.get_by_test_id(f"digit{i}-class").inner_text()) for i in (1, 2)]
            p_leq = float(page.get_by_test_id("compare").inner_text())
            assert all(0 <= c <= 9 for c in shown)
            assert len(classes) == 2
            assert 0 <= p_leq <= 1
            browser.close()
        assert asked
        assert all(url.startswith(f"http://127.0.0.1:{port}/") for url in asked)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
