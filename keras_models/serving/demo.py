"""The demo page that scripts/serve.py serves at `/`: two pads to draw a digit on (mouse, pen or
touch), or a random pair of MNIST test digits, and the model's answer with each digit's ten
probabilities, asked through the server's own V2 protocol. A drawing is read in Python, as
predict.py reads an image (predict.digit_from_pixels): MNIST's preprocessing has one definition.
The page loads nothing from elsewhere."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from keras_models.core.errors import DataError
from keras_models.serving.protocol import read_body, send_json

PAGE = Path(__file__).with_name("demo.html")
MAX_SIDE = 512  # pixels of a drawing a side; the page sends 112


class Demo:
    """The page of one served model, its random pairs and its drawings. `test_images`: where
    random pairs come from (the embedded MNIST test half unless given)."""

    def __init__(self, model_name: str, test_images=None, seed: int | None = None):
        self.model_name, self._test, self.rng = model_name, test_images, np.random.default_rng(seed)

    def page(self) -> bytes:
        return PAGE.read_text().replace("{{MODEL}}", html.escape(self.model_name)).encode()

    def random_pair(self) -> dict:
        """Two test digits (14 x 14, 0-255) and their classes."""
        if self._test is None:
            from keras_models.data.images import load_images

            self._test = load_images("embedded", "test")
        i, j = self.rng.integers(len(self._test.images), size=2)
        return {
            "pair": self._test.images[[i, j]].tolist(),
            "classes": [int(self._test.labels[i]), int(self._test.labels[j])],
        }

    def pair(self, body: bytes) -> dict:
        """{"digits": [drawing, drawing]} (gray 0-255, white on black) -> {"pair": (2, 14, 14)},
        or a DataError that says what is wrong."""
        from keras_models.serving.predict import digit_from_pixels

        try:
            digits = json.loads(body)["digits"]
        except (ValueError, KeyError, TypeError):
            raise DataError('the body must be {"digits": [drawing, drawing]}') from None
        if not isinstance(digits, list) or len(digits) != 2:
            raise DataError("`digits` must hold two drawings")
        pair = []
        for k, drawing in enumerate(digits, 1):
            try:
                pixels = np.asarray(drawing, np.float32)
            except (ValueError, TypeError, OverflowError):
                raise DataError(f"digit {k}: not a rectangle of numbers") from None
            if pixels.ndim != 2 or not (min(pixels.shape) >= 1 and max(pixels.shape) <= MAX_SIDE):
                raise DataError(f"digit {k}: expected a drawing of at most {MAX_SIDE} x {MAX_SIDE}, got {pixels.shape}")
            if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"digit {k}: pixels must lie in 0-255")
            pair.append(digit_from_pixels(pixels, invert=False, where=f"digit {k}"))
        return {"pair": np.stack(pair).tolist()}


class DemoRoutes:
    """ASGI middleware, beside the protocol's: the demo page at / (for a browser; KServe's
    liveness answers other clients), its random pairs at /demo/random and its drawings at
    /demo/pair. Every other request passes on."""

    def __init__(self, app, demo: Demo):
        self.app, self.demo = app, demo

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and await self.answer(scope, receive, send):
            return
        return await self.app(scope, receive, send)

    async def answer(self, scope, receive, send) -> bool:
        """Whether the request was one of the demo's, answered."""
        method, path = scope["method"], scope["path"]
        accept = dict(scope["headers"]).get(b"accept", b"")
        if method == "GET" and path == "/" and b"text/html" in accept:
            page = self.demo.page()
            head = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(page)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": page})
        elif method == "GET" and path == "/demo/random":
            await send_json(send, 200, self.demo.random_pair())
        elif method == "POST" and path == "/demo/pair":
            body = await read_body(receive)
            if body is None:  # the client went away
                return True
            try:
                await send_json(send, 200, self.demo.pair(body))
            except DataError as e:
                await send_json(send, 400, {"error": str(e)})
        else:
            return False
        return True
