"""A `serve.py` process on this machine and a client for it: start it, wait until its model is
ready, send TF Serving REST requests, and send many at once from several clients. The serving
tests and the serving benchmarks (experiments/serve_load.py) share these."""

from __future__ import annotations

import json
import socket
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


def free_ports(n: int) -> list[int]:
    """`n` different ports on 127.0.0.1 that were free a moment ago (held together while chosen,
    so that no two are the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]
