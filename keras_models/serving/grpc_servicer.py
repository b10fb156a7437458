"""The Open Inference Protocol over gRPC as over REST: KServe's servicer answers model metadata
without `versions` and `platform`, and readiness and inference without reading the version a
request names. `PairServicer` reads them as `routes.py` reads the REST paths: the served
version, or NOT_FOUND for another. `install()` makes KServe's gRPC server build it."""

from __future__ import annotations

from kserve.errors import ModelNotFound
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import to_headers

from keras_models.serving.routes import VERSION_HEADER, v2_metadata


class PairServicer(InferenceServicer):
    def served(self, name: str, version: str):
        """The LoadedExport serving `name`; NOT_FOUND for an unknown model, a model still
        loading, or a version (when the request names one) that is not the one served."""
        try:
            served = self._data_plane.get_model_from_registry(name).served
        except (ModelNotFound, AttributeError):
            raise ModelNotFound(name) from None
        if served is None or (version and str(served.version) != version):
            raise ModelNotFound(f"{name} version {version}" if version else name)
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


def install() -> None:
    """KServe's gRPC server builds its servicer from this module attribute when it starts."""
    grpc_server.InferenceServicer = PairServicer
