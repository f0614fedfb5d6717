"""export.serve: TF Serving's REST and gRPC APIs over BASE/NAME/VERSION SavedModels.

Each API test runs against our in-process server ("zoo") and, when a ``tensorflow_model_server``
binary is on PATH, against real TF Serving on the same directory (skipped otherwise).
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from export.serve import ModelServer, main, write_models_config
from export.serving import codec
from export.serving.layout import find_models
from tests.serving_fixtures import make_bytes_saved_model, make_toy_saved_model

ROOT = Path(__file__).resolve().parents[1]
TFMS = shutil.which("tensorflow_model_server")
MAX_REQUEST_BYTES = 1 << 20
LABELS = {"toy": {"stable": 1}}
Z = [[0.1, -0.2, 0.3, 0.9], [1.0, 0.5, -1.5, 0.0]]


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """A running server (ours or real TF Serving) and clients for it."""

    kind: str
    base: Path
    rest_port: int
    grpc_target: str
    channel: grpc.Channel = field(init=False)

    def __post_init__(self):
        self.channel = grpc.insecure_channel(self.grpc_target)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def rest(self, method, path, body=None, headers=None):
        """(status, parsed JSON body) of one REST request."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        return response.status, json.loads(payload) if payload else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make_base(base: Path) -> Path:
    make_toy_saved_model(base / "toy", 1)
    make_toy_saved_model(base / "hot", 1)
    make_bytes_saved_model(base / "echo", 1)
    return base


def _wait_for(condition, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _available(server: Server, name: str, version: int | None = None) -> bool:
    status, body = server.rest("GET", f"/v1/models/{name}")
    return status == 200 and any(
        entry["state"] == "AVAILABLE" and (version is None or entry["version"] == str(version))
        for entry in body["model_version_status"])


@pytest.fixture(scope="module", params=[
    "zoo",
    pytest.param("tensorflow_model_server", marks=pytest.mark.skipif(
        TFMS is None, reason="tensorflow_model_server binary not on PATH")),
])
def server(request, tmp_path_factory):
    base = _make_base(tmp_path_factory.mktemp(f"models-{request.param}"))
    config = write_models_config(base, model_root=str(base), labels=LABELS)
    if request.param == "zoo":
        ours = ModelServer(model_config_file=str(config), host="127.0.0.1", rest_port=0,
                           grpc_port=0, poll_seconds=0.5, max_request_bytes=MAX_REQUEST_BYTES,
                           allow_version_labels_for_unavailable_models=True).start()
        handle = Server("zoo", base, ours.rest_port, ours.grpc_address)
        yield handle
        handle.channel.close()
        ours.stop()
        return
    rest_port, grpc_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [TFMS, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
         "--allow_version_labels_for_unavailable_models=true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = Server("tensorflow_model_server", base, rest_port, f"127.0.0.1:{grpc_port}")
    try:
        _wait_for(lambda: all(_available(handle, m) for m in ("toy", "hot", "echo")),
                  timeout=60, what="tensorflow_model_server to load the models")
        yield handle
    finally:
        handle.channel.close()
        process.terminate()
        process.wait(timeout=30)


@functools.lru_cache(maxsize=None)
def _loaded(path: str):
    return tf.saved_model.load(path)


def reference(server: Server, signature: str, model="toy", version=1, **inputs):
    """Outputs of the in-process ``tf.saved_model.load(...).signatures[...]`` call."""
    function = _loaded(str(server.base / model / str(version))).signatures[signature]
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()})
            .items()}


def assert_still_serving(server: Server):
    status, body = server.rest("POST", "/v1/models/toy:predict", {"instances": Z})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], reference(server, "serving_default",
                                                              z=np.float32(Z))["images"],
                               rtol=1e-5, atol=1e-6)


def _z() -> np.ndarray:
    return np.asarray(Z, np.float32)


# -- REST ----------------------------------------------------------------------------------


def test_rest_model_status(server):
    assert server.rest("GET", "/v1/models/toy") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}}]})
    assert server.rest("GET", "/v1/models/toy/versions/1")[0] == 200
    status, body = server.rest("GET", "/v1/models/toy/versions/9")
    assert status == 404 and "error" in body


def test_rest_metadata(server):
    status, body = server.rest("GET", "/v1/models/toy/versions/1/metadata")
    assert status == 200, body
    assert body["model_spec"]["name"] == "toy" and body["model_spec"]["version"] == "1"
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "generate_from_seed"} <= set(signatures)
    z = signatures["serving_default"]["inputs"]["z"]
    assert z["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in z["tensor_shape"]["dim"]] == ["-1", "4"]
    png = signatures["generate_from_seed"]["outputs"]["images_png_bytes"]
    assert png["dtype"] == "DT_STRING"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize("path", ["/v1/models/toy:predict", "/v1/models/toy/versions/1:predict",
                                  "/v1/models/toy/labels/stable:predict"])
@pytest.mark.parametrize("signature_name", [None, "serving_default"])
def test_rest_predict_row_and_columnar(server, path, signature_name):
    expected = reference(server, "serving_default", z=_z())["images"]
    extra = {} if signature_name is None else {"signature_name": signature_name}
    status, body = server.rest("POST", path, {**extra, "instances": Z})
    assert status == 200, body
    assert list(body) == ["predictions"]  # a single output: the list itself, no names
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5, atol=1e-6)
    status, body = server.rest("POST", path, {**extra, "inputs": {"z": Z}})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"], expected, rtol=1e-5, atol=1e-6)
    status, body = server.rest("POST", path, {**extra, "instances": [{"z": row} for row in Z]})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5, atol=1e-6)


def _png_pixels(b64_object) -> np.ndarray:
    data = base64.b64decode(b64_object["b64"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)


def test_rest_generate_from_seed_bytes_output_is_base64_png(server):
    seeds = [3, 11, 42]
    expected = reference(server, "generate_from_seed", seed=np.int64(seeds))
    status, body = server.rest("POST", "/v1/models/toy:predict",
                               {"signature_name": "generate_from_seed", "instances": seeds})
    assert status == 200, body
    rows = body["predictions"]
    assert [sorted(row) for row in rows] == [["images", "images_png_bytes"]] * 3
    np.testing.assert_allclose([r["images"] for r in rows], expected["images"], rtol=1e-5,
                               atol=1e-6)
    for row, png in zip(rows, expected["images_png_bytes"]):
        assert base64.b64decode(row["images_png_bytes"]["b64"]) == png
        assert _png_pixels(row["images_png_bytes"]).shape == (2, 2)

    status, body = server.rest("POST", "/v1/models/toy/versions/1:predict",
                               {"signature_name": "generate_from_seed", "inputs": seeds})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["images"], expected["images"], rtol=1e-5,
                               atol=1e-6)
    assert [base64.b64decode(o["b64"]) for o in body["outputs"]["images_png_bytes"]] == list(
        expected["images_png_bytes"])


def test_rest_b64_string_input(server):
    payloads = [b"\x00\xffbinary", b"hello"]
    status, body = server.rest("POST", "/v1/models/echo:predict", {"instances": [
        {"b64": base64.b64encode(p).decode()} for p in payloads]})
    assert status == 200, body
    assert [row["length"] for row in body["predictions"]] == [len(p) for p in payloads]
    assert [base64.b64decode(row["echo_bytes"]["b64"]) for row in body["predictions"]] == payloads
    status, body = server.rest("POST", "/v1/models/echo:predict", {"inputs": ["plain text"]})
    assert status == 200, body
    assert body["outputs"]["length"] == [10]


# Bad requests: (id, method, path, body, HTTP status, message fragment checked on our server).
BAD_REQUESTS = [
    ("malformed-json", "POST", "/v1/models/toy:predict", b'{"instances": [[1, 2', 400,
     "JSON Parse error"),
    ("not-an-object", "POST", "/v1/models/toy:predict", b"[1, 2]", 400, "Is not object"),
    ("empty-body", "POST", "/v1/models/toy:predict", b"", 400, "empty"),
    ("neither-key", "POST", "/v1/models/toy:predict", {"signature_name": "serving_default"},
     400, "Missing 'inputs' or 'instances' key"),
    ("both-keys", "POST", "/v1/models/toy:predict", {"instances": Z, "inputs": Z}, 400,
     "only one of 'inputs' or 'instances'"),
    ("empty-instances", "POST", "/v1/models/toy:predict", {"instances": []}, 400, "No values"),
    ("ragged", "POST", "/v1/models/toy:predict", {"instances": [[1, 2, 3, 4], [1, 2]]}, 400,
     "unequal lengths"),
    ("wrong-shape", "POST", "/v1/models/toy:predict", {"instances": [[1.0, 2.0, 3.0]]}, 400,
     'Input "z" has shape [1, 3], but signature "serving_default" expects [?, 4]'),
    ("wrong-rank", "POST", "/v1/models/toy:predict", {"inputs": [1.0, 2.0, 3.0, 4.0]}, 400,
     "expects [?, 4]"),
    ("strings-for-float", "POST", "/v1/models/toy:predict", {"instances": [["a", "b", "c", "d"]]},
     400, 'Input "z" expects float32 values, but got strings'),
    ("float-for-int64", "POST", "/v1/models/toy:predict",
     {"signature_name": "generate_from_seed", "instances": [1.5]}, 400, "expects int64"),
    ("b64-for-float", "POST", "/v1/models/toy:predict", {"instances": [{"b64": "AAAA"}]}, 400,
     "expects float32"),
    ("missing-input", "POST", "/v1/models/toy:predict", {"inputs": {"zz": Z}}, 400,
     "Missing named input: z in 'inputs' object."),
    ("unknown-instance-key", "POST", "/v1/models/toy:predict", {"instances": [{"q": Z[0]}]}, 400,
     "keys must be equal to: z"),
    ("signature-name-not-string", "POST", "/v1/models/toy:predict",
     {"signature_name": 7, "instances": Z}, 400, "'signature_name'"),
    ("unknown-model", "POST", "/v1/models/nope:predict", {"instances": Z}, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown-version", "POST", "/v1/models/toy/versions/7:predict", {"instances": Z}, 404,
     "Servable not found for request: Specific(toy, 7)"),
    ("huge-version", "POST", "/v1/models/toy/versions/99999999999999999999:predict",
     {"instances": Z}, 400, "Failed to convert version"),
    ("unknown-label", "POST", "/v1/models/toy/labels/nope:predict", {"instances": Z}, 400,
     "Unrecognized servable version label: nope"),
    ("unknown-signature", "POST", "/v1/models/toy:predict",
     {"signature_name": "nope", "instances": Z}, 400, 'signature key "nope" not found'),
    ("invalid-base64", "POST", "/v1/models/echo:predict", {"instances": [{"b64": "***"}]}, 400,
     "Unable to base64 decode"),
    ("status-unknown-model", "GET", "/v1/models/nope", None, 404,
     "Could not find any versions of model nope"),
    ("metadata-unknown-version", "GET", "/v1/models/toy/versions/5/metadata", None, 404,
     "Specific(toy, 5)"),
    ("get-on-predict", "GET", "/v1/models/toy:predict", None, 400, "Malformed request"),
    ("post-on-status", "POST", "/v1/models/toy", {"instances": Z}, 400, "Malformed request"),
]


@pytest.mark.parametrize("method,path,body,expected_status,message",
                         [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_rest_bad_requests_answer_4xx_and_keep_serving(server, method, path, body,
                                                       expected_status, message):
    status, answer = server.rest(method, path, body)
    assert status == expected_status, answer
    assert isinstance(answer["error"], str) and answer["error"]
    if server.kind == "zoo":
        assert message in answer["error"]
    assert_still_serving(server)


def _zoo_only(server):
    if server.kind != "zoo":
        pytest.skip("checks behaviour specific to export.serve (limits, HTTP details)")


def test_rest_oversized_body_is_refused_before_reading(server):
    _zoo_only(server)
    # Announced size over the limit: refused from the headers, no body sent at all.
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
    conn.putrequest("POST", "/v1/models/toy:predict")
    conn.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert "exceeds the limit" in json.loads(response.read())["error"]
    conn.close()
    # A real body over the limit.
    status, answer = server.rest("POST", "/v1/models/toy:predict", b" " * (MAX_REQUEST_BYTES + 1))
    assert status == 413 and "--max_request_bytes" in answer["error"]
    assert_still_serving(server)


def test_rest_http_level_errors(server):
    _zoo_only(server)
    status, answer = server.rest("DELETE", "/v1/models/toy")
    assert status == 405 and "DELETE" in answer["error"]
    assert server.rest("GET", "/not/the/api")[0] == 404
    status, answer = server.rest("POST", "/v1/models/toy:predict", b"{}",
                                 headers={"Content-Length": "abc"})
    assert status == 400
    for request, status_line in ((b"GARBAGE\r\n\r\n", None),  # HTTP/0.9: no status line
                                 (b"BREW /v1/models/toy HTTP/1.1\r\n\r\n", b" 501 "),
                                 (b"GET /v1/models/toy HTTP/7.5\r\n\r\n", None)):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
            sock.sendall(request)
            reply = b"".join(iter(lambda: sock.recv(4096), b""))  # server closes after errors
        assert b'"error"' in reply
        if status_line:
            assert status_line in reply.split(b"\r\n")[0]
    assert_still_serving(server)


def test_rest_keep_alive_connection_serves_many_requests(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
    for body in ({"instances": Z}, {"instances": [[1]]}, {"inputs": {"z": Z}}):
        conn.request("POST", "/v1/models/toy:predict", json.dumps(body))
        response = conn.getresponse()
        json.loads(response.read())
        assert response.status in (200, 400)
    conn.close()


# -- gRPC ----------------------------------------------------------------------------------


def _predict_request(model="toy", signature="", version=None, label=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_grpc_predict_matches_in_process_call(server):
    response = server.predictions.Predict(_predict_request(z=_z()), timeout=30)
    assert response.model_spec.name == "toy" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]),
                               reference(server, "serving_default", z=_z())["images"],
                               rtol=1e-6, atol=1e-7)

    seeds = np.int64([5, 6])
    response = server.predictions.Predict(_predict_request(
        signature="generate_from_seed", version=1, seed=seeds), timeout=30)
    expected = reference(server, "generate_from_seed", seed=seeds)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]), expected["images"],
                               rtol=1e-6, atol=1e-7)
    pngs = tf.make_ndarray(response.outputs["images_png_bytes"])
    assert list(pngs) == list(expected["images_png_bytes"])
    assert Image.open(io.BytesIO(pngs[0])).size == (2, 2)

    response = server.predictions.Predict(_predict_request(label="stable", z=_z()), timeout=30)
    assert response.model_spec.version.value == 1


def test_grpc_predict_output_filter(server):
    request = _predict_request(signature="generate_from_seed", seed=np.int64([1]))
    request.output_filter.append("images_png_bytes")
    response = server.predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["images_png_bytes"]


def test_grpc_get_model_metadata(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy"
    response = server.predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "toy" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    seed = signature_map.signature_def["generate_from_seed"].inputs["seed"]
    assert seed.dtype == tf.int64.as_datatype_enum
    assert [d.size for d in seed.tensor_shape.dim] == [-1]


def test_grpc_get_model_status(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "toy"
    response = server.models.GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


GRPC_BAD_REQUESTS = [
    ("unknown-model", dict(model="nope", z=Z), grpc.StatusCode.NOT_FOUND),
    ("unknown-version", dict(version=9, z=Z), grpc.StatusCode.NOT_FOUND),
    ("unknown-signature", dict(signature="nope", z=Z), grpc.StatusCode.FAILED_PRECONDITION),
    ("wrong-dtype", dict(z=np.int64([[1, 2, 3, 4]])), grpc.StatusCode.INVALID_ARGUMENT),
    ("wrong-shape", dict(z=np.float32([[1, 2, 3]])), grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown-input", dict(q=np.float32([[1, 2, 3, 4]])), grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown-label", dict(label="nope", z=Z), grpc.StatusCode.INVALID_ARGUMENT),
]


@pytest.mark.parametrize("kwargs,code", [c[1:] for c in GRPC_BAD_REQUESTS],
                         ids=[c[0] for c in GRPC_BAD_REQUESTS])
def test_grpc_bad_requests(server, kwargs, code):
    kwargs = {k: (np.float32(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    with pytest.raises(grpc.RpcError) as failure:
        server.predictions.Predict(_predict_request(**kwargs), timeout=30)
    assert failure.value.code() == code, failure.value.details()
    assert failure.value.details()
    assert_still_serving(server)


def test_grpc_status_and_metadata_errors(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as failure:
        server.models.GetModelStatus(request, timeout=30)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["nope"])
    metadata.model_spec.name = "toy"
    with pytest.raises(grpc.RpcError) as failure:
        server.predictions.GetModelMetadata(metadata, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_oversized_message(server):
    _zoo_only(server)
    big = np.zeros((MAX_REQUEST_BYTES // 16 + 1, 4), np.float32)
    with pytest.raises(grpc.RpcError) as failure:
        server.predictions.Predict(_predict_request(z=big), timeout=30)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(server)


def test_concurrent_rest_and_grpc_clients(server):
    expected = reference(server, "serving_default", z=_z())["images"]

    def rest_call(_):
        status, body = server.rest("POST", "/v1/models/toy:predict", {"instances": Z})
        return status == 200 and np.allclose(body["predictions"], expected, atol=1e-6)

    def grpc_call(_):
        response = server.predictions.Predict(_predict_request(z=_z()), timeout=30)
        return np.allclose(tf.make_ndarray(response.outputs["images"]), expected, atol=1e-6)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(rest_call, range(24)))
        assert all(pool.map(grpc_call, range(24)))


# -- file-system polling --------------------------------------------------------------------


def _serves_version(server: Server, version: int) -> bool:
    status, body = server.rest("POST", "/v1/models/hot:predict", {"instances": Z})
    expected = reference(server, "serving_default", model="hot", version=version, z=_z())
    return status == 200 and np.allclose(body["predictions"], expected["images"], atol=1e-6)


def test_new_version_is_served_without_restart_and_removal_falls_back(server):
    hot = server.base / "hot"
    (hot / ".tmp-3").mkdir()
    (hot / ".tmp-3" / "saved_model.pb").write_bytes(b"half-written")  # not a version: ignored
    (hot / "latest").mkdir()
    assert _serves_version(server, 1)
    make_toy_saved_model(hot, 2)
    assert not np.allclose(reference(server, "serving_default", "hot", 1, z=_z())["images"],
                           reference(server, "serving_default", "hot", 2, z=_z())["images"])
    _wait_for(lambda: _serves_version(server, 2), what="version 2 to be served")
    assert _available(server, "hot", 2)
    status, body = server.rest("POST", "/v1/models/hot/versions/2:predict", {"instances": Z})
    assert status == 200, body
    # Latest policy (TF Serving's default): version 1 is unloaded once 2 is up.
    _wait_for(lambda: server.rest("POST", "/v1/models/hot/versions/1:predict",
                                  {"instances": Z})[0] == 404, what="version 1 to be unloaded")

    shutil.rmtree(hot / "2")
    _wait_for(lambda: _serves_version(server, 1), what="fallback to version 1")
    assert _available(server, "hot", 1)
    shutil.rmtree(hot / ".tmp-3")
    shutil.rmtree(hot / "latest")


def _reload(server: Server, base: Path, names, labels=LABELS):
    """HandleReloadConfigRequest with a config serving ``names`` under ``base``."""
    from tensorflow_serving.apis import model_management_pb2
    from export.serving.layout import models_config_text

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(models_config_text(names, str(base), labels=labels), request.config)
    return server.models.HandleReloadConfigRequest(request, timeout=60)


def test_broken_new_version_keeps_old_one_serving(server):
    flaky = server.base / "flaky"
    shutil.copytree(server.base / "toy" / "1", flaky / "1")
    assert server.rest("GET", "/v1/models/flaky")[0] == 404  # not in the config: not served
    response = _reload(server, server.base, ["echo", "flaky", "hot", "toy"])
    assert response.status.error_code == 0
    _wait_for(lambda: _available(server, "flaky", 1), what="new model to load")
    (flaky / "2").mkdir()
    (flaky / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")

    def failed():
        status, body = server.rest("GET", "/v1/models/flaky")
        states = {e["version"]: e for e in body["model_version_status"]}
        return "2" in states and states["2"]["state"] == "END"

    _wait_for(failed, what="version 2 to fail loading")
    status, body = server.rest("GET", "/v1/models/flaky/versions/2")
    assert body["model_version_status"][0]["status"]["error_code"] == "UNKNOWN"
    assert body["model_version_status"][0]["status"]["error_message"]
    status, body = server.rest("POST", "/v1/models/flaky:predict", {"instances": Z})
    assert status == 200, body
    # Fixed on disk: retried because its files changed.
    shutil.rmtree(flaky / "2")
    make_toy_saved_model(flaky, 2)
    _wait_for(lambda: _available(server, "flaky", 2), what="repaired version 2 to load")


def test_all_versions_policy_serves_every_version(tmp_path):
    for version in (1, 2):
        make_toy_saved_model(tmp_path / "toy", version)
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name="toy", base_path=str(tmp_path / "toy"),
                                                model_platform="tensorflow")
    entry.model_version_policy.all.SetInParent()
    with ModelServer(model_config=config, rest_port=0, grpc_port=0) as ours:
        server = Server("zoo", tmp_path, ours.rest_port, ours.grpc_address)
        status, body = server.rest("GET", "/v1/models/toy")
        assert [(e["version"], e["state"]) for e in body["model_version_status"]] == [
            ("2", "AVAILABLE"), ("1", "AVAILABLE")]
        for path, version in (("/v1/models/toy", 2), ("/v1/models/toy/versions/1", 1),
                              ("/v1/models/toy/versions/2", 2)):
            status, body = server.rest("POST", path + ":predict", {"instances": Z})
            expected = reference(server, "serving_default", version=version, z=_z())["images"]
            assert status == 200 and np.allclose(body["predictions"], expected, atol=1e-6)
        response = server.predictions.Predict(_predict_request(version=1, z=_z()), timeout=30)
        assert response.model_spec.version.value == 1
        server.channel.close()
    assert sorted(os.listdir(tmp_path)) == ["toy"]  # nothing written


def test_codec_response_json_matches_numpy_values():
    outputs = {
        "f32": np.float32([[0.1, -2.5e-8], [np.nan, -np.inf]]),
        "f16": np.float16([[1.5, 2], [3, 4]]),
        "i64": np.int64([[2**62, -1], [0, 7]]),
        "flag": np.array([[True, False], [False, True]]),
        "text": np.array([["é".encode(), b"a"], [b"b", b"c"]], dtype=object),
        "png_bytes": np.array([[b"\x00\xff", b""], [b"x", b"y"]], dtype=object),
    }
    columnar = json.loads(codec.encode_predict_response(outputs, codec.COLUMNAR))["outputs"]
    rows = json.loads(codec.encode_predict_response(outputs, codec.ROW))["predictions"]
    assert [sorted(r) for r in rows] == [sorted(outputs)] * 2
    for name, array in outputs.items():
        for value in (columnar[name], [r[name] for r in rows]):
            if name == "png_bytes":
                assert [[base64.b64decode(v["b64"]) for v in row] for row in value] == \
                    array.tolist()
            elif name == "text":
                assert value == [["é", "a"], ["b", "c"]]
            else:
                np.testing.assert_array_equal(np.asarray(value, array.dtype), array)
    assert json.loads(codec.encode_predict_response({"x": np.float32([0.1])}, codec.ROW)) == {
        "predictions": [0.1]}  # shortest float32 form, as TF Serving writes it
    for shape in [(0, 3), (2, 0), (), (3,)]:
        array = np.zeros(shape, np.int32)
        assert json.loads(codec.encode_predict_response({"x": array}, codec.COLUMNAR)) == {
            "outputs": array.tolist()}


# -- layout and models.config ---------------------------------------------------------------


def test_find_models_ignores_incomplete_and_temporary_versions(tmp_path):
    for version in ("1", "20", ".tmp-3", "latest", "4"):
        (tmp_path / "m" / version).mkdir(parents=True)
    for version in ("1", "20", ".tmp-3", "latest"):
        (tmp_path / "m" / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    (tmp_path / ".hidden" / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "models.config").write_text("")
    assert {n: sorted(v) for n, v in find_models(tmp_path).items()} == {"m": [1, 20]}


def test_models_config_is_valid_text_proto(tmp_path):
    for name in ("dcgan", "wgan_gp"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "no_versions_yet" / ".tmp-1").mkdir(parents=True)
    path = write_models_config(tmp_path)
    assert path == tmp_path / "models.config"
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
    assert entries == [("dcgan", "/models/dcgan", "tensorflow"),
                       ("wgan_gp", "/models/wgan_gp", "tensorflow")]
    assert sorted(os.listdir(tmp_path)) == ["dcgan", "models.config", "no_versions_yet",
                                            "wgan_gp"]  # no temp file left behind

    write_models_config(tmp_path, model_root="/srv/m/", version_policy="all",
                        labels={"dcgan": {"stable": 1, "canary": 2}}, names=['we"ird'])
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    [entry] = config.model_config_list.config
    assert (entry.name, entry.base_path) == ('we"ird', '/srv/m/we"ird')
    assert entry.model_version_policy.HasField("all")


def test_write_config_command(tmp_path, capsys):
    (tmp_path / "toy" / "3").mkdir(parents=True)
    (tmp_path / "toy" / "3" / "saved_model.pb").write_bytes(b"")
    assert main(["write-config", "--base", str(tmp_path)]) == 0
    config = text_format.Parse((tmp_path / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    [entry] = config.model_config_list.config
    assert (entry.name, entry.base_path, dict(entry.version_labels)) == ("toy", "/models/toy", {})
    assert main(["write-config", "--base", str(tmp_path)]) == 0  # unchanged: fine
    (tmp_path / "models.config").write_text("# my own edits\n")
    assert main(["write-config", "--base", str(tmp_path)]) == 2  # never overwrites edits...
    assert (tmp_path / "models.config").read_text() == "# my own edits\n"
    assert main(["write-config", "--base", str(tmp_path), "--force"]) == 0  # ...unless told
    assert main(["write-config", "--base", str(tmp_path / "missing")]) == 2


# -- the CLI process -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_shuts_down_cleanly_on_signal(tmp_path, signum):
    make_bytes_saved_model(tmp_path / "echo", 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "export.serve", "--base", str(tmp_path), "--rest-port",
         str(_free_port()), "--grpc-port", str(_free_port()), "--poll-seconds", "0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        rest_url = None
        deadline = time.monotonic() + 60
        while rest_url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, process.stderr.read()
                continue
            if line.startswith("REST API at http://"):
                rest_url = line.split("http://", 1)[1].strip()
        assert rest_url, "server did not print its REST address"
        host, port = rest_url.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/v1/models/echo")
        response = conn.getresponse()
        assert response.status == 200 and b"AVAILABLE" in response.read()
        conn.close()
        process.send_signal(signum)
        assert process.wait(timeout=15) == 0
        assert "Loaded servable version {name: echo version: 1}" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
