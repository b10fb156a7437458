"""Load on a running `scripts/serve.py`: concurrent clients sending TF Serving REST requests of
random sizes, with latency percentiles and throughput. Used by `scripts/benchmark.py
--serving-load` and by the server's tests, which also check every answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def start_server(
    base_path: Path, port: int, log: Path, *args: str, python: str = sys.executable, **popen
) -> subprocess.Popen:
    """`serve.py` in a process of its own (of `python`, another environment's), its output in the
    file `log`: the server logs every request, and a pipe that nobody reads would fill up and stall it."""
    cmd = [python, "-m", "keras_models.cli.serve", str(base_path), "--http-port", str(port), *args]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    """Until GET <url> (the model's readiness) answers 200; the server's output if it died."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def post(url: str, body: bytes | dict, timeout: float = 60.0, headers: dict | None = None) -> tuple[int, dict]:
    """(HTTP status, decoded JSON answer) of one POST."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def row_request(pairs: np.ndarray) -> dict:
    return {"instances": [{"pair": p} for p in pairs.tolist()]}


def run_load(
    url: str, pool: np.ndarray, clients: int = 8, requests: int = 2000, max_pairs: int = 100, seed: int = 0, check=None
) -> dict:
    """`requests` POSTs of 1 to `max_pairs` pairs drawn from `pool`, from `clients` threads.
    `check(indices, answer)` may verify each answer; it returns a message or None."""
    rng = np.random.default_rng(seed)
    plan = [rng.choice(len(pool), size=int(rng.integers(1, max_pairs + 1))) for _ in range(requests)]
    rows = pool.tolist()

    def one(indices):
        body = json.dumps({"instances": [{"pair": rows[i]} for i in indices]}).encode()
        start = time.perf_counter()
        status, out = post(url, body)
        seconds = time.perf_counter() - start
        problem = f"HTTP {status}: {out}" if status != 200 else (check(indices, out) if check else None)
        return seconds, problem

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool_:
        done = list(pool_.map(one, plan))
    wall = time.perf_counter() - start
    latency = np.array([s for s, _ in done])
    problems = [p for _, p in done if p]
    return {
        "clients": clients,
        "requests": requests,
        "pairs": int(sum(len(p) for p in plan)),
        "wall_seconds": round(wall, 2),
        "requests_per_s": round(requests / wall, 1),
        "pairs_per_s": round(sum(len(p) for p in plan) / wall, 1),
        "latency_ms_p50": round(1000 * float(np.percentile(latency, 50)), 1),
        "latency_ms_p99": round(1000 * float(np.percentile(latency, 99)), 1),
        "failures": len(problems),
        "first_failures": problems[:3],
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
