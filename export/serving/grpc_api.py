"""gRPC front-end: ``tensorflow.serving.PredictionService`` and ``ModelService``."""

from __future__ import annotations

import functools
import logging
import time
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from export.serving import apis
from export.serving.errors import ServingError, invalid
from export.serving.metrics import track
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


# Tensor::AsProtoField: the typed repeated field of each dtype (tensorflow/core/framework/tensor.cc).
_TYPED_FIELD = {"float32": "float_val", "float64": "double_val", "int32": "int_val",
                "int16": "int_val", "int8": "int_val", "uint8": "int_val", "uint16": "int_val",
                "int64": "int64_val", "uint32": "uint32_val", "uint64": "uint64_val",
                "bool": "bool_val", "complex64": "scomplex_val", "complex128": "dcomplex_val"}


def output_tensor_proto(array: np.ndarray, tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """A PredictResponse output as TF Serving writes it: every value in the dtype's typed field
    (``float_val``, ``int64_val``, ``string_val``...), or packed in ``tensor_content`` with
    ``--enable_serialization_as_tensor_content`` (predict_util.cc PostProcessPredictionResult)."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU" or tensor_content:
        return tf.make_tensor_proto(array)  # strings always go to string_val
    dtype = tf.as_dtype(array.dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum,
                                   tensor_shape=tf.TensorShape(array.shape).as_proto())
    flat = array.ravel()
    if dtype in (tf.float16, tf.bfloat16):
        proto.half_val.extend(flat.view(np.uint16).tolist())  # bit patterns, as TF does
    elif array.dtype.kind == "c":
        getattr(proto, _TYPED_FIELD[array.dtype.name]).extend(
            np.stack([flat.real, flat.imag], axis=-1).ravel().tolist())
    else:
        getattr(proto, _TYPED_FIELD[array.dtype.name]).extend(flat.tolist())
    return proto


def request_deadline(context) -> float | None:
    """The client's gRPC deadline as ``time.monotonic()`` seconds (None: no deadline)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _to_array(name: str, proto):
    try:
        return tf.make_ndarray(proto)
    except Exception as error:
        raise invalid(f'Cannot parse input tensor "{name}": {error}') from None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata (Classify/Regress/MultiInference stay UNIMPLEMENTED)."""

    def __init__(self, repository: ModelRepository, tensor_content: bool = False, metrics=None):
        self.repository = repository
        self.tensor_content = tensor_content
        self.metrics = metrics

    @_aborts_on_error
    def Predict(self, request, context):
        with track(self.metrics, request.model_spec.name, "Predict", "GRPC") as tracked:
            tracked.signature = request.model_spec.signature_name or "serving_default"
            servable = _servable(self.repository, request)
            tracked.version = servable.version
            return self._predict(servable, request, context)

    def _predict(self, servable, request, context):
        signature = servable.signature(request.model_spec.signature_name)
        signature.check_input_names(request.inputs)
        arrays = {name: _to_array(name, proto) for name, proto in request.inputs.items()}
        outputs = signature(arrays, output_filter=list(request.output_filter),
                            deadline=request_deadline(context))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature.name
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(output_tensor_proto(array, self.tensor_content))
        return response

    @_aborts_on_error
    def GetModelMetadata(self, request, context):
        apis.check_metadata_fields(list(request.metadata_field))
        return apis.model_metadata(_servable(self.repository, request))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest (``reload_config(ModelServerConfig)``
    applies a config or raises ConfigError; the RPC then fails with its code, as TF Serving's
    ModelServiceImpl answers)."""

    def __init__(self, repository: ModelRepository, reload_config=None):
        self.repository = repository
        self.reload_config = reload_config

    @_aborts_on_error
    def HandleReloadConfigRequest(self, request, context):
        if self.reload_config is None:
            raise ServingError("UNIMPLEMENTED", "Config reloads are not enabled on this server")
        self.reload_config(request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response

    @_aborts_on_error
    def GetModelStatus(self, request, context):
        return apis.model_status(self.repository, *_spec_args(request))


def make_grpc_server(repository: ModelRepository, host: str, port: int, max_message_bytes: int,
                     workers: int = 8, tensor_content: bool = False,
                     reload_config=None, metrics=None) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server and the port it bound (port 0 -> free port)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", 0)]  # fail loudly if the port is taken
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="grpc-server"),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(repository, tensor_content, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(repository, reload_config), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot bind gRPC to {address}: {error}") from None
    if not bound:
        raise OSError(f"cannot bind gRPC to {address}")
    return server, bound
