"""Load on a real `scripts/serve.py`: concurrent clients sending TF Serving REST requests of
random sizes, with latency percentiles and throughput (`scripts/benchmark.py --serving-load`),
and the speed of each protocol's path against the SavedModel called in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_models.serving.local_server import free_port, post, row_request, run_load, start_server, wait_ready


def server_load(cfg, clients: int = 8, requests: int = 2000, max_pairs: int = 100) -> dict:
    """`run_load` against a real `serve.py` process on 127.0.0.1, serving an export of the
    model of `cfg` (untrained: the cost of a pair does not depend on the weights)."""
    import tempfile

    from keras_models.models.builder import build_model
    from keras_models.serving.export import export_saved_model

    from .benchmark import synthetic_pairs

    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(build_model(cfg.spec, 33.0, 80.0**2), tmp)
        port = free_port()
        proc = start_server(path.parent, port, Path(tmp) / "server.log")
        try:
            url = f"http://127.0.0.1:{port}/v1/models/{cfg.spec.model}"
            wait_ready(url, proc)
            return run_load(url + ":predict", synthetic_pairs(500).x, clients, requests, max_pairs)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def protocol_speeds(cfg, batch: int = 1000, calls: int = 10) -> dict:
    """Pairs per second at `batch` pairs a request, one client after another on 127.0.0.1,
    through each path of a real `serve.py`: V1 JSON, V2 JSON, V2 with binary tensors, and gRPC;
    beside the same SavedModel called in this process, in the same run."""
    import tempfile

    import tensorflow as tf
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    from keras_models.models.builder import build_model
    from keras_models.serving.export import export_saved_model, load_saved_model

    from .benchmark import synthetic_pairs

    pairs = synthetic_pairs(batch).x
    names = ("compare", "digit1", "digit2")

    def rate(call) -> float:
        call()  # warm: the first request traces the signature at this batch size
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return round(batch * calls / (time.perf_counter() - start), 1)

    def triton(lib, address, binary):
        client = lib.InferenceServerClient(address)
        tensor = lib.InferInput("pair", list(pairs.shape), "FP32")
        kw = {} if lib is grpc else {"binary_data": binary}
        tensor.set_data_from_numpy(pairs, **kw)
        outputs = [lib.InferRequestedOutput(k, **kw) for k in names]
        return lambda: client.infer(cfg.spec.model, [tensor], outputs=outputs).as_numpy("compare")

    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(build_model(cfg.spec, 33.0, 80.0**2), tmp)
        _, signature = load_saved_model(path)
        result = {"batch": batch, "calls": calls, "in_process": rate(lambda: signature(pair=tf.constant(pairs)))}
        port, grpc_port = free_port(), free_port()
        proc = start_server(path.parent, port, Path(tmp) / "server.log", "--grpc-port", str(grpc_port))
        try:
            url = f"http://127.0.0.1:{port}/v1/models/{cfg.spec.model}"
            wait_ready(url, proc)
            body = json.dumps(row_request(pairs)).encode()
            result["v1_json"] = rate(lambda: post(url + ":predict", body))
            result["v2_json"] = rate(triton(http, f"127.0.0.1:{port}", binary=False))
            result["v2_binary"] = rate(triton(http, f"127.0.0.1:{port}", binary=True))
            result["grpc"] = rate(triton(grpc, f"127.0.0.1:{grpc_port}", binary=True))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    paths = ("v1_json", "v2_json", "v2_binary", "grpc")
    result["ratios"] = {k: round(result[k] / result["in_process"], 3) for k in paths}
    return result
