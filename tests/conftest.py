import gzip
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, as the MNIST distribution writes them."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_folder(folder: Path, images: np.ndarray, labels: np.ndarray, split="t10k", gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for what, arr, nd in (("images", images, 3), ("labels", labels, 1)):
        name = f"{split}-{what}-idx{nd}-ubyte"
        data = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def embedded():
    """The real embedded MNIST subset, pooled: (train Images, test Images)."""
    from keras_models.data.images import load_data

    return load_data("embedded")


@pytest.fixture(scope="session")
def small_mnist_folder(tmp_path_factory, embedded):
    """A folder of real MNIST digits (from the embedded subset) written as gzipped IDX files,
    both splits, at 28x28: what a user's local MNIST folder looks like, only smaller."""
    from keras_models.data.images import embedded_csv_path, read_csv

    images, labels = read_csv(embedded_csv_path())
    folder = tmp_path_factory.mktemp("mnist")
    write_idx_folder(folder, images[0::2][:600], labels[0::2][:600], split="train")
    write_idx_folder(folder, images[1::2][:600], labels[1::2][:600], split="t10k")
    return folder


@pytest.fixture(scope="session")
def peer_test_folder(tmp_path_factory):
    """Real MNIST digits (the last 2500 of the embedded subset) as a t10k IDX folder: enough for
    the 1000 test pairs that the PyTorch peer draws."""
    from keras_models.data.images import embedded_csv_path, read_csv

    images, labels = read_csv(embedded_csv_path())
    return write_idx_folder(tmp_path_factory.mktemp("peer_mnist"), images[2500:], labels[2500:], split="t10k")


@pytest.fixture(scope="session")
def peer_script():
    """The PyTorch peer beside the checkout (../shared/bench), where torch is installed."""
    pytest.importorskip("torch", reason="the peer's framework; the project itself never needs it")
    from experiments.peer import DEFAULT_PEER

    if not DEFAULT_PEER.is_file():
        pytest.skip(f"no peer at {DEFAULT_PEER}")
    return DEFAULT_PEER


@pytest.fixture(scope="module")
def pool(embedded):
    """Pairs of real MNIST test digits."""
    from keras_models.data.images import make_pairs

    _, test = embedded
    return make_pairs(test.images, test.labels, 300, np.random.default_rng(5)).x


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """scripts/serve.py in a process of its own on 127.0.0.1, REST and gRPC, serving version 1
    of a small real cnn_aux export."""
    from helpers import POLL, clean_env, tiny_model

    from keras_models.serving.export import export_saved_model
    from keras_models.serving.local_server import free_port, start_server, wait_ready

    root = tmp_path_factory.mktemp("serve")
    first = export_saved_model(tiny_model(1), root / "saved_models", "cnn_aux")
    port, grpc_port = free_port(), free_port()
    log = root / "server.log"
    flags = ("--poll-seconds", str(POLL), "--host", "127.0.0.1", "--grpc-port", str(grpc_port))
    proc = start_server(first.parent, port, log, *flags, cwd=root, env=clean_env())
    url = f"http://127.0.0.1:{port}/v1/models/cnn_aux"
    try:
        wait_ready(url, proc)
        yield {
            "root": root,
            "base": first.parent,
            "url": url,
            "proc": proc,
            "log": log,
            "http": f"127.0.0.1:{port}",
            "grpc": f"127.0.0.1:{grpc_port}",
        }
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
