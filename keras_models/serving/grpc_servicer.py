"""The Open Inference Protocol over gRPC as over REST: KServe's servicer answers model metadata
without `versions` and `platform`, and readiness and inference without reading the version a
request names. `PairServicer` reads them as `routes.py` reads the REST paths: the served
version, or NOT_FOUND for another. It also refuses the model-repository calls (load, unload):
turning a model off from outside is not this server's to offer. `install(host)` makes KServe
build this servicer, and listen on `host` only (KServe's own server listens on every address)."""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc import aio
from kserve import model_server
from kserve.errors import ModelNotFound
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import to_headers

from keras_models.serving.kserve_model import VersionNotServed
from keras_models.serving.routes import VERSION_HEADER, v2_metadata, version_refusal


class PairServicer(InferenceServicer):
    def served(self, name: str, version: str):
        """The LoadedExport serving `name`; NOT_FOUND for an unknown model, a model still
        loading, or a version (when the request names one) that is not the one served."""
        try:
            served = self._data_plane.get_model_from_registry(name).served
        except (ModelNotFound, AttributeError):
            raise ModelNotFound(name) from None
        refusal = version_refusal(name, served, version)
        if refusal is not None:
            raise VersionNotServed(refusal)
        if served is None:
            raise ModelNotFound(name)
        return served

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context) -> pb.ModelMetadataResponse:
        meta = v2_metadata(self.served(request.name, request.version), request.name)
        tensors = {k: [pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta[k]] for k in ("inputs", "outputs")}
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"], **tensors
        )

    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:
        if request.version:
            self.served(request.name, request.version)
        return await super().ModelReady(request, context)

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        # KServe's own ModelInfer, with the version the request names passed on to the model,
        # which holds the request to it (kserve_model.PairModel.version_for).
        self.served(request.model_name, request.model_version)
        headers = to_headers(context)
        if request.model_version:
            headers[VERSION_HEADER.decode()] = request.model_version
        self.validate_grpc_request(request)
        response, _ = await self._data_plane.infer(
            request=InferRequest.from_grpc(request), headers=headers, model_name=request.model_name
        )
        return response.to_grpc() if isinstance(response, InferResponse) else response

    async def RepositoryModelLoad(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server loads the versions of its base path itself")

    async def RepositoryModelUnload(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server loads the versions of its base path itself")


class BoundGRPCServer(grpc_server.GRPCServer):
    """KServe's gRPC server (its `start`, as of the release server.KSERVE_TESTED names), listening
    on `host` instead of every address."""

    host = "0.0.0.0"

    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        servicer = PairServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"[{self.host}]:{self._port}" if ":" in self.host else f"{self.host}:{self._port}"
        if not self._server.add_insecure_port(address):
            raise OSError(f"gRPC cannot listen on {address}")
        await self._server.start()
        await self._server.wait_for_termination()


def install(host: str) -> None:
    """KServe's model server starts BoundGRPCServer, on `host`, with PairServicer."""
    BoundGRPCServer.host = host
    model_server.GRPCServer = BoundGRPCServer
