"""--enable_batching: concurrent requests share one signature call, results are split back;
TF Serving's BatchingParameters (text proto) and its refusals (oversize, bad files)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from export.serve import ModelServer, main
from export.serving.batching import BatchingParameters, parse_batching_parameters
from export.serving.config import ConfigError
from export.serving.repository import Signature
from tests.serving_fixtures import make_toy_saved_model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("batching_models")
    make_toy_saved_model(base / "toy", 1)
    return base


@pytest.fixture
def calls(monkeypatch):
    """Batch sizes of every signature call made by the server."""
    sizes, lock, original = [], threading.Lock(), Signature._run

    def spy(self, arrays, wanted):
        with lock:
            sizes.append(next(iter(arrays.values())).shape[0])
        return original(self, arrays, wanted)

    monkeypatch.setattr(Signature, "_run", spy)
    return sizes


def predict(stub, z):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.float32(z)))
    return tf.make_ndarray(stub.Predict(request, timeout=30).outputs["images"])


def serve(base, **params):
    return ModelServer(base, rest_port=None, grpc_port=0, batching=BatchingParameters(**params))


def test_concurrent_requests_share_one_call_and_get_their_own_rows(base, calls):
    reference = tf.saved_model.load(str(base / "toy" / "1")).signatures["serving_default"]
    rows = np.random.default_rng(0).standard_normal((8, 1, 4)).astype(np.float32)
    with serve(base, max_batch_size=8, batch_timeout_micros=300_000,
               num_batch_threads=1) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(server.grpc_address))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda z: predict(stub, z), rows))
    for z, answer in zip(rows, answers):
        np.testing.assert_allclose(answer, reference(z=tf.constant(z))["images"].numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert sum(calls) == 8 and len(calls) < 8 and max(calls) > 1, calls


def test_allowed_batch_sizes_pad_and_oversize_is_refused(base, calls):
    reference = tf.saved_model.load(str(base / "toy" / "1")).signatures["serving_default"]
    with serve(base, max_batch_size=4, allowed_batch_sizes=(4,)) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(server.grpc_address))
        z = np.float32([[0.1, 0.2, 0.3, 0.4]] * 3)
        np.testing.assert_allclose(predict(stub, z), reference(z=tf.constant(z))["images"],
                                   rtol=1e-5, atol=1e-6)
        assert calls == [4]  # 3 rows padded to the allowed size 4, padding dropped
        with pytest.raises(grpc.RpcError) as failure:
            predict(stub, np.zeros((5, 4)))
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert failure.value.details() == "Task size 5 is larger than maximum input batch size 4"


@pytest.mark.parametrize("text,message", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4",
     "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8"),
    ("max_batch_size: 8", "Failed to parse"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be positive"),
    ("enable_large_batch_splitting { value: true }", "not supported"),
])
def test_bad_batching_parameters(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_batching_parameters(text)


def test_parses_tf_serving_batching_file():
    params = parse_batching_parameters(
        "max_batch_size { value: 32 } batch_timeout_micros { value: 1000 } "
        "max_enqueued_batches { value: 100 } num_batch_threads { value: 4 } "
        'thread_pool_name { value: "t" } allowed_batch_sizes: 8 allowed_batch_sizes: 32')
    assert params == BatchingParameters(32, 1000, 100, 4, (8, 32))


def test_bad_batching_file_at_start_is_one_line(base, tmp_path, capsys):
    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size { value: -1 }")
    code = main(["--base", str(base), "--enable_batching", f"--batching_parameters_file={bad}",
                 "--rest_api_port=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "max_batch_size must be positive" in err[-1]
