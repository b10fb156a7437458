"""Server start-up: KServe's model server over the SavedModels of one base path, in TF Serving's
layout (`saved_models/<model>/<version>/`). The protocol lives in `protocol.py`, the model in
`kserve_model.py`; this module only starts them."""

from __future__ import annotations

import re
from pathlib import Path

from keras_models.core.errors import ConfigError, ModelFileError
from keras_models.serving.protocol import BODY_SECONDS, POLL_SECONDS

ALL_INTERFACES = "0.0.0.0"  # TF Serving's default, and KServe's
# KServe's internals that the project relies on: ModelServer._rest_server (the --host patch below,
# for kserve/kserve#4558) and the module attribute from which its gRPC server builds its servicer
# (grpc_servicer.install). Both were read in this release, which requirements.txt pins, and
# tests/test_serving.py fails on another until they are checked again.
KSERVE_TESTED = "0.21.0"


def check_port_free(host: str, port: int, flag: str) -> None:
    """A ConfigError when another socket listens on `host`:`port`. gRPC binds its port with
    SO_REUSEPORT, which would let a second server share it and answer half the calls for a
    model it does not have; a probe without that option is refused by any listener there.
    SO_REUSEADDR lets the probe pass over connections of an earlier server still in TIME_WAIT."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ConfigError(f"{flag} {port}: {host}:{port} is in use ({e.strerror}); give another port") from None


# A model's name is a path segment of both protocols and a string in the demo page's script:
# letters, digits, dot, dash and underscore, as a TF Serving model name in practice is.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def serve(
    base_path: str | Path,
    name: str | None = None,
    http_port: int = 8080,
    workers: int = 1,
    poll_seconds: float = POLL_SECONDS,
    host: str = ALL_INTERFACES,
    grpc_port: int | None = None,
    runtime: str = "tensorflow",
    body_timeout: float = BODY_SECONDS,
    request_log: str = "line",
) -> None:
    """Load the highest version under `base_path` and serve it until SIGTERM or SIGINT: REST
    (V1 and V2) on `host`:`http_port`, and gRPC V2 on `host`:`grpc_port` when one is given;
    `runtime` names what answers (serving.runtimes.RUNTIMES); a request body must arrive within
    `body_timeout` seconds; `request_log` says what the log keeps of each request
    (kserve_model.REQUEST_LOGS)."""
    base = Path(base_path)
    if base.is_file():
        raise ModelFileError(f"{base}: a file; give the folder of numbered versions, such as saved_models/cnn_aux")
    if not base.is_dir():
        raise ModelFileError(f"{base}: no such folder (give a base path such as saved_models/cnn_aux)")
    if (base / "saved_model.pb").is_file():
        raise ModelFileError(f"{base}: is one version; give its base path {base.parent}, as TF Serving takes")
    name = name or base.name
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"model name {name!r}: use letters, digits, '.', '-' and '_' (it is part of every URL); give --model-name"
        )
    if host != ALL_INTERFACES and workers > 1:
        raise ConfigError("--host binds one server process; with --workers above 1 KServe binds all interfaces")
    if grpc_port is not None and grpc_port == http_port:
        raise ConfigError(f"--http-port and --grpc-port are both {http_port}; give each its own port")
    # Before the model loads: a port in use is one line, not a server that fails after loading.
    check_port_free(host, http_port, "--http-port")
    if grpc_port is not None:
        check_port_free(host, grpc_port, "--grpc-port")
    import kserve

    from keras_models.serving import grpc_servicer
    from keras_models.serving.kserve_model import PairModel, install_limits

    class BoundModelServer(kserve.ModelServer):
        # KServe binds its REST server to 0.0.0.0 itself (kserve/kserve#4558); its uvicorn
        # config is read when the server starts, after this hook.
        def setup_event_loop(self):
            super().setup_event_loop()
            if getattr(self, "_rest_server", None) is not None:
                self._rest_server.config.host = host

    model = PairModel(name, base, poll_seconds, runtime, body_timeout, request_log)
    install_limits(model)
    grpc = {"enable_grpc": grpc_port is not None, **({"grpc_port": grpc_port} if grpc_port else {})}
    if grpc_port is not None:
        grpc_servicer.install(host)
    # KServe's latency lines are off unless the request log asks for them (--request-log full).
    server = BoundModelServer(
        http_port=http_port, workers=workers, enable_latency_logging=request_log == "full", **grpc
    )
    model.load()  # after the server set up KServe's logging, so that the first version's line is kept
    server.start([model])
    model.stop()
