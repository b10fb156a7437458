"""The `kserve.Model` that serves the protocol of `serving.protocol`. Importing KServe builds the
FastAPI app that every server process runs; `install_limits` puts the body-size limit, the
protocol's and the demo's routes and the one-line logging of bad requests on it. `server.serve`
calls it in the main process, and each process of a multi-worker server calls it when it
unpickles its model."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import warnings
from pathlib import Path

import kserve
import numpy as np
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import model_server
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.logging import logger as kserve_logger
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keras_models.core.errors import ModelFileError
from keras_models.serving.loaded import LoadedExport, newest_loadable
from keras_models.serving.protocol import (
    BODY_SECONDS,
    MAX_BODY_BYTES,
    POLL_SECONDS,
    REQUEST_LOGS,
    BadRequest,
    BodyLimit,
    answer,
    one_line,
    parse_request,
    v2_pairs,
)
from keras_models.serving.routes import VERSION_HEADER, ProtocolRoutes, v2_metadata, version_refusal


class VersionNotServed(ModelNotFound):
    """404 (NOT_FOUND over gRPC) with routes.version_refusal's words."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason


class OneLineBadRequests(logging.Filter):
    """KServe logs every refused request at ERROR with its traceback; a client's mistake is one
    line at WARNING, which leaves ERROR to the server's own faults."""

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], (InvalidInput, ModelNotFound)):
            record.msg, record.args, record.exc_info = "bad request: %s", (record.exc_info[1],), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_limits(model: PairModel, app=None) -> None:
    """The body's size and time limits, the protocol's and the demo's routes on KServe's `app`
    (the one this process runs), and one-line bad-request logs; `model` is the one this
    process serves. The app keeps its models in
    its own state, so that a second call only adds its model."""
    app = model_server.app if app is None else app
    if hasattr(app.state, "pair_models"):
        app.state.pair_models[model.name] = model
        return
    from keras_models.serving.demo import Demo, DemoRoutes

    models = app.state.pair_models = {model.name: model}
    app.add_middleware(DemoRoutes, demo=Demo(model.name))
    app.add_middleware(ProtocolRoutes, served=lambda name: models[name].served)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=model.body_timeout)
    # Every client error in the protocol's one form, {"error": "..."}: a body that fails
    # FastAPI's validation is a bad request (400, not 422 with pydantic's list), and a route's
    # own refusals (404, 405) keep their status.
    app.add_exception_handler(RequestValidationError, one_line_validation_error)
    app.add_exception_handler(StarletteHTTPException, one_line_http_error)
    kserve_logger.addFilter(OneLineBadRequests())
    # KServe's own responses use a response class that FastAPI now deprecates; not this project's to fix.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


async def one_line_validation_error(request, exc) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":  # its location is the character where parsing stopped
        at = [p for p in first.get("loc", ()) if p != "body"]
        why = (first.get("ctx") or {}).get("error", "")
        text = f"the body is not valid JSON ({why}{', ' if why else ''}at character {at[0] if at else 0})"
        return JSONResponse({"error": one_line(text)}, status_code=400)
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the body"
    return JSONResponse({"error": one_line(f"{where}: {first.get('msg', 'not a valid request')}")}, status_code=400)


async def one_line_http_error(request, exc) -> JSONResponse:
    return JSONResponse({"error": one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


class PairModel(kserve.Model):
    """The exports under one base path, served under one name by one runtime (serving.runtimes)."""

    def __init__(
        self,
        name: str,
        base_path: str | Path,
        poll_seconds: float = POLL_SECONDS,
        runtime: str = "tensorflow",
        body_timeout: float = BODY_SECONDS,
        request_log: str = "line",
    ):
        super().__init__(name)
        self.base = Path(base_path)
        self.poll_seconds, self.runtime = poll_seconds, runtime
        self.body_timeout, self.request_log = body_timeout, request_log
        self.served: LoadedExport | None = None
        self._failed: dict[int, str] = {}  # version -> reason, reported once
        self._stop = threading.Event()

    # A multi-worker server pickles the model into each spawned process: the process loads
    # the SavedModel itself instead of receiving TensorFlow objects. It loads in a thread,
    # because KServe restarts a process that does not answer its parent's ping within 5 s,
    # and importing TensorFlow alone can take longer; until then the model reports not ready.
    SETTINGS = ("name", "base", "poll_seconds", "runtime", "body_timeout", "request_log")

    def __getstate__(self):
        return {k: str(self.base) if k == "base" else getattr(self, k) for k in self.SETTINGS}

    def __setstate__(self, state):
        self.__init__(*(state[k] for k in self.SETTINGS))
        install_limits(self)
        threading.Thread(target=self.load, name="load", daemon=True).start()

    def load(self) -> bool:
        # Here, after KServe has configured its logging (which resets the loggers' levels).
        for name, level in REQUEST_LOGS[self.request_log].items():
            logging.getLogger(name).setLevel(level)
        self.refresh()
        if self.served is None:
            raise ModelFileError(f"{self.base}: no loadable version (numbered folders with a SavedModel)")
        self.ready = True
        threading.Thread(target=self._watch, name="version-watch", daemon=True).start()
        return self.ready

    def refresh(self) -> None:
        """Switch to the highest version above the served one that loads; when the served
        version's folder is gone, to the highest that loads of those left, as TF Serving falls
        back, and to none (not ready) when none does."""
        served = self.served
        gone = served is not None and not served.path.is_dir()
        above = None if served is None or gone else served.version
        found = newest_loadable(self.base, self.runtime, above, on_skip=self._skipped)
        if found is not None:
            self.served = found  # one reference swap: a request in flight keeps its version
            self.ready = True
            how = f"version {served.version} was removed; " if gone else ""
            kserve_logger.info("%sserving %s version %d from %s", how, self.name, found.version, self.base)
        elif gone:
            self.served, self.ready = None, False
            kserve_logger.error(
                "version %d of %s was removed and no other version loads; not ready until one does",
                served.version,
                self.name,
            )

    def _skipped(self, version: int, message: str) -> None:
        if self._failed.get(version) != message:  # each reason once, not at every poll
            self._failed[version] = message
            kserve_logger.warning("skipping version %d: %s", version, message)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as e:  # a watcher that dies would freeze the version silently
                kserve_logger.warning("version poll failed: %s: %s", type(e).__name__, e)

    def stop(self) -> None:
        self._stop.set()

    # KServe's V2 metadata over gRPC; nothing while a worker is still loading its first version.
    def get_input_types(self):
        return v2_metadata(self.served, self.name)["inputs"] if self.served else []

    def get_output_types(self):
        return v2_metadata(self.served, self.name)["outputs"] if self.served else []

    def version_for(self, headers) -> LoadedExport:
        """The served version, which must be the one a versioned path named (routes.py passes
        it on in a header): a newer one switched in after the route checked it is not that one."""
        served = self.served
        refusal = version_refusal(self.name, served, (headers or {}).get(VERSION_HEADER.decode()))
        if refusal is not None:
            raise VersionNotServed(refusal)
        if served is None:  # loading, or its version was removed and none other loads
            raise ModelNotReady(self.name)
        return served

    async def predict(self, payload, headers=None):
        served = self.version_for(headers)
        if isinstance(payload, InferRequest):
            return await self._predict_v2(payload, served)
        try:
            pairs, columnar = parse_request(payload, served.pixel_range)
        except BadRequest as e:
            raise InvalidInput(str(e)) from None
        # Both runtimes release the GIL: running the model off the event loop keeps the
        # server answering readiness checks and other requests meanwhile.
        return await asyncio.get_running_loop().run_in_executor(None, answer, served, pairs, columnar)

    async def _predict_v2(self, request: InferRequest, served: LoadedExport) -> InferResponse:
        """The Open Inference Protocol: the one FP32 input `pair`, as JSON or as the binary
        tensor extension (KServe decodes either), answered by one version."""
        try:
            if len(request.inputs) != 1:
                raise BadRequest(f"the request must hold the one input `pair`, got {[i.name for i in request.inputs]}")
            wanted = [o.name for o in request.request_outputs or []]
            unknown = [name for name in wanted if name not in served.outputs]
            if unknown:
                raise BadRequest(f"unknown output(s) {unknown}; the model answers {list(served.outputs)}")
            tensor = request.inputs[0]
            try:
                data = tensor.as_numpy()
            except Exception as e:  # data that does not fill the declared shape, say
                raise BadRequest(f"`pair`: its data does not match shape {tensor.shape} ({e})") from None
            pairs = v2_pairs(tensor.name, tensor.datatype, tensor.shape, data, served.pixel_range)
        except BadRequest as e:
            raise InvalidInput(str(e)) from None
        out = await asyncio.get_running_loop().run_in_executor(None, served.run, pairs)
        outputs = []
        for name in served.outputs:
            output = InferOutput(name=name, shape=list(out[name].shape), datatype="FP32")
            output.set_data_from_numpy(out[name].astype(np.float32), binary_data=request.use_binary_outputs)
            outputs.append(output)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=str(served.version),
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )
