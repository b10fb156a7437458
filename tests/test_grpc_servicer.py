"""The gRPC side of the server (keras_models.serving.grpc_servicer): it listens on --host only,
refuses the model-repository calls that would switch a model off, and refuses an unknown
requested output as REST does."""

import socket

import numpy as np
import pytest
from helpers import clean_env, tiny_model

from keras_models.serving.export import export_saved_model
from keras_models.serving.local_server import free_ports, start_server, wait_ready


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_host_governs_rest_and_grpc(tmp_path):
    """Every address of 127.0.0.0/8 is this machine: a server bound to 127.0.0.1 must not answer
    on 127.0.0.2 on either port (KServe's own gRPC server listens on every address)."""
    base = export_saved_model(tiny_model(2), tmp_path / "saved_models", "cnn_aux").parent
    http_port, grpc_port = free_ports(2)
    flags = ("--host", "127.0.0.1", "--grpc-port", str(grpc_port))
    proc = start_server(base, http_port, tmp_path / "server.log", *flags, env=clean_env())
    try:
        wait_ready(f"http://127.0.0.1:{http_port}/v1/models/cnn_aux", proc)
        assert connects("127.0.0.1", grpc_port)
        assert not connects("127.0.0.2", grpc_port)
        assert not connects("127.0.0.2", http_port)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_repository_calls_are_refused_and_the_model_keeps_answering(server, pool):
    import grpc
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    c = triton.InferenceServerClient(server["grpc"])
    for call in (c.unload_model, c.load_model):
        with pytest.raises(InferenceServerException) as e:
            call("cnn_aux")
        assert e.value.status() == str(grpc.StatusCode.UNIMPLEMENTED)
    assert c.is_model_ready("cnn_aux")
    tensor = triton.InferInput("pair", [2, 2, 14, 14], "FP32")
    tensor.set_data_from_numpy(pool[:2])
    assert c.infer("cnn_aux", [tensor]).as_numpy("compare").shape == (2, 1)


@pytest.mark.slow
@pytest.mark.parametrize("client", ["http", "grpc"])
def test_an_unknown_requested_output_is_refused_alike(server, pool, client):
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    lib = grpc if client == "grpc" else http
    c = lib.InferenceServerClient(server[client])
    tensor = lib.InferInput("pair", [1, 2, 14, 14], "FP32")
    tensor.set_data_from_numpy(pool[:1].astype(np.float32))
    with pytest.raises(InferenceServerException) as e:
        c.infer("cnn_aux", [tensor], outputs=[lib.InferRequestedOutput("digit3")])
    assert e.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")
    assert "unknown output(s) ['digit3']" in e.value.message()
