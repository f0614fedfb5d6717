"""gRPC front-end: ``tensorflow.serving.PredictionService`` and ``ModelService``."""

from __future__ import annotations

import functools
import logging
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from export.serving import apis
from export.serving.errors import ServingError, invalid
from export.serving.repository import ModelRepository, Servable

log = logging.getLogger("export.serve")


def _aborts_on_error(method):
    """Turn ServingError (and any other failure) into ``context.abort(code, message)``."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as error:
            failure = error
        except Exception as error:  # a bug or an odd model: answer, keep serving
            log.exception("gRPC %s failed", method.__name__)
            failure = ServingError("INTERNAL", f"Internal error: {type(error).__name__}: {error}")
        context.abort(failure.grpc_code, failure.message)

    return wrapper


def _spec_args(request) -> tuple[str, int | None, str | None]:
    """(name, version, label) of a request's ModelSpec."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def _servable(repository: ModelRepository, request) -> Servable:
    return repository.get(*_spec_args(request))


def _to_array(name: str, proto):
    try:
        return tf.make_ndarray(proto)
    except Exception as error:
        raise invalid(f'Cannot parse input tensor "{name}": {error}') from None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata (Classify/Regress/MultiInference stay UNIMPLEMENTED)."""

    def __init__(self, repository: ModelRepository):
        self.repository = repository

    @_aborts_on_error
    def Predict(self, request, context):
        servable = _servable(self.repository, request)
        signature = servable.signature(request.model_spec.signature_name)
        signature.check_input_names(request.inputs)
        arrays = {name: _to_array(name, proto) for name, proto in request.inputs.items()}
        outputs = signature(arrays, output_filter=list(request.output_filter))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature.name
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response

    @_aborts_on_error
    def GetModelMetadata(self, request, context):
        apis.check_metadata_fields(list(request.metadata_field))
        return apis.model_metadata(_servable(self.repository, request))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus (HandleReloadConfigRequest stays UNIMPLEMENTED)."""

    def __init__(self, repository: ModelRepository):
        self.repository = repository

    @_aborts_on_error
    def GetModelStatus(self, request, context):
        return apis.model_status(self.repository, *_spec_args(request))


def make_grpc_server(repository: ModelRepository, host: str, port: int, max_message_bytes: int,
                     workers: int = 8) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server and the port it bound (port 0 -> free port)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", 0)]  # fail loudly if the port is taken
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="grpc-server"),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(repository), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(repository), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot bind gRPC to {address}: {error}") from None
    if not bound:
        raise OSError(f"cannot bind gRPC to {address}")
    return server, bound
