"""export.serve as a drop-in for tensorflow_model_server: wire format, command line, config.

Each behaviour is checked the way a client written against TF Serving's documentation uses it:
typed proto fields in gRPC outputs (``tensor_content`` only with the flag), gzip request
bodies, extra columnar keys ignored, the REST timeout and gRPC deadlines, TF Serving's flags
(unsupported ones refused by name), the config as input (version policies, labels and their
rules, reload on file change and over gRPC, bad configs refused at start or kept on reload).
"""

from __future__ import annotations

import gzip
import http.client
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from export.serve import ModelServer, main, parse_args
from tests.serving_fixtures import (make_bytes_saved_model, make_slow_saved_model,
                                    make_toy_saved_model)

Z = [[0.1, -0.2, 0.3, 0.9], [1.0, 0.5, -1.5, 0.0]]
SLOW_STEPS = 40000  # ~1.5 s of matmuls on this machine


def config_text(base: Path, models, labels=None, policy=None) -> str:
    """A ModelServerConfig text proto serving ``models`` under ``base``."""
    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        entry = config.model_config_list.config.add(name=name, base_path=str(base / name),
                                                    model_platform="tensorflow")
        for label, version in (labels or {}).get(name, {}).items():
            entry.version_labels[label] = version
        if policy and name in policy:
            text_format.Parse(policy[name], entry.model_version_policy)
    return text_format.MessageToString(config)


class Client:
    def __init__(self, server: ModelServer):
        self.port = server.rest_port
        self.channel = grpc.insecure_channel(server.grpc_address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def rest(self, method, path, body=None, headers=None):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        return response.status, json.loads(payload) if payload else None

    def predict(self, model="toy", timeout=30, version=None, label=None, **inputs):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        return self.predictions.Predict(request, timeout=timeout)

    def reload(self, text: str):
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(text, request.config)
        return self.models.HandleReloadConfigRequest(request, timeout=60)

    def versions(self, model) -> dict[int, str]:
        status, body = self.rest("GET", f"/v1/models/{model}")
        if status != 200:
            return {}
        return {int(e["version"]): e["state"] for e in body["model_version_status"]}


def wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("compat_models")
    make_toy_saved_model(base / "toy", 1)
    make_toy_saved_model(base / "toy", 2)
    make_bytes_saved_model(base / "echo", 1)
    make_slow_saved_model(base / "slow", 1)
    return base


@pytest.fixture(scope="module")
def client(base):
    config = base / "models.config"
    config.write_text(config_text(base, ["toy", "echo", "slow"]))
    server = ModelServer(model_config_file=str(config), rest_port=0, grpc_port=0,
                         poll_seconds=0.5, rest_timeout_ms=300).start()
    handle = Client(server)
    yield handle
    handle.channel.close()
    server.stop()


# -- wire format -----------------------------------------------------------------------------


def test_grpc_outputs_fill_typed_fields_as_tf_serving(client):
    response = client.predict(z=np.float32(Z))
    images = response.outputs["images"]
    assert images.tensor_content == b"" and len(images.float_val) == 2 * 2 * 2 * 1
    assert [d.size for d in images.tensor_shape.dim] == [2, 2, 2, 1]
    np.testing.assert_array_equal(np.float32(images.float_val).reshape(2, 2, 2, 1),
                                  tf.make_ndarray(images))
    echo = client.predict("echo", payload=np.array([b"ab", b"\x00c"], object))
    assert list(echo.outputs["length"].int_val) == [2, 2]
    assert list(echo.outputs["echo_bytes"].string_val) == [b"ab", b"\x00c"]


def test_tensor_content_flag_packs_outputs(base):
    with ModelServer(model_config=text_format.Parse(
            config_text(base, ["toy"]), model_server_config_pb2.ModelServerConfig()),
            rest_port=None, grpc_port=0, tensor_content=True) as server:
        handle = Client(server)
        images = handle.predict(z=np.float32(Z)).outputs["images"]
        assert images.tensor_content and not images.float_val
        assert tf.make_ndarray(images).shape == (2, 2, 2, 1)
        handle.channel.close()


def test_gzip_request_body(client):
    expected = client.rest("POST", "/v1/models/toy:predict", {"instances": Z})
    body = gzip.compress(json.dumps({"instances": Z}).encode())
    assert client.rest("POST", "/v1/models/toy:predict", body,
                       {"Content-Encoding": "gzip"}) == expected
    status, answer = client.rest("POST", "/v1/models/toy:predict", b"not gzip",
                                 {"Content-Encoding": "gzip"})
    assert status == 400 and "decompress" in answer["error"]


def test_extra_columnar_keys_are_ignored_row_keys_are_not(client):
    status, body = client.rest("POST", "/v1/models/toy:predict",
                               {"inputs": {"z": Z, "unused": [1, 2]}})
    assert status == 200 and np.asarray(body["outputs"]).shape == (2, 2, 2, 1)
    status, body = client.rest("POST", "/v1/models/toy:predict",
                               {"instances": [{"z": Z[0], "unused": 1}]})
    assert status == 400 and "keys must be equal to: z" in body["error"]


def test_rest_timeout_answers_504_deadline_exceeded(client):
    started = time.monotonic()
    status, body = client.rest("POST", "/v1/models/slow:predict",
                               {"instances": [SLOW_STEPS]})
    assert status == 504 and body["error"] == "Timed out waiting for notification"
    assert time.monotonic() - started < 1.2  # answered at the timeout, not after the work
    status, body = client.rest("POST", "/v1/models/slow:predict", {"instances": [1]})
    assert status == 200 and len(body["predictions"]) == 1


def test_grpc_deadline_is_honoured(client):
    with pytest.raises(grpc.RpcError) as failure:
        client.predict("slow", timeout=0.3, steps=np.int32([SLOW_STEPS]))
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.predict("slow", steps=np.int32([1])).outputs["y"].float_val


def test_grpc_input_names_error_in_tf_serving_words(client):
    with pytest.raises(grpc.RpcError) as failure:
        client.predict(q=np.float32(Z))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == ("input size does not match signature: 1!=1 len({q}) != "
                                       "len({z}). Sent extra: {q}. Missing but required: {z}.")


# -- config as input ---------------------------------------------------------------------------


def test_serves_exactly_the_config(client, base):
    assert client.versions("toy") == {2: "AVAILABLE"}  # latest policy
    assert client.rest("GET", "/v1/models/hot")[0] == 404
    (base / "stray" / "1").mkdir(parents=True)  # a folder the config does not name
    assert client.rest("GET", "/v1/models/stray")[0] == 404


def test_version_policies_and_labels_over_grpc_reload(client, base):
    text = config_text(base, ["toy", "echo", "slow"],
                       policy={"toy": "latest { num_versions: 2 }"})
    assert client.reload(text).status.error_code == 0
    wait_for(lambda: client.versions("toy") == {2: "AVAILABLE", 1: "AVAILABLE"},
             what="two latest versions")
    # A label on an available version is accepted and routes requests.
    labelled = config_text(base, ["toy", "echo", "slow"], labels={"toy": {"stable": 1}},
                           policy={"toy": "latest { num_versions: 2 }"})
    assert client.reload(labelled).status.error_code == 0
    assert client.predict(label="stable", z=np.float32(Z)).model_spec.version.value == 1
    status, _ = client.rest("POST", "/v1/models/toy/labels/stable:predict", {"instances": Z})
    assert status == 200
    # A label on a version that is not loaded is refused (no allow flag); old config kept.
    with pytest.raises(grpc.RpcError) as failure:
        client.reload(config_text(base, ["toy"], labels={"toy": {"canary": 7}}))
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Request to assign label to version 7 of model toy" in failure.value.details()
    assert client.versions("echo") == {1: "AVAILABLE"}
    # specific { versions } serves only those.
    specific = config_text(base, ["toy", "echo", "slow"], labels={"toy": {"stable": 1}},
                           policy={"toy": "specific { versions: 1 }"})
    assert client.reload(specific).status.error_code == 0
    wait_for(lambda: client.versions("toy").get(2) == "END", what="version 2 unloaded")
    assert client.versions("toy")[1] == "AVAILABLE"
    # Bad configs over gRPC: refused with TF Serving's words.
    with pytest.raises(grpc.RpcError) as failure:
        client.reload('model_config_list { config { name: "x" base_path: "relative/x" } }')
    assert "to have an absolute path" in failure.value.details()
    with pytest.raises(grpc.RpcError) as failure:
        client.reload(config_text(base, ["toy", "toy"]))
    assert "Illegal to list model toy multiple times" in failure.value.details()
    assert client.reload(config_text(base, ["toy", "echo", "slow"])).status.error_code == 0
    wait_for(lambda: client.versions("toy").get(2) == "AVAILABLE", what="back to latest")


def test_config_file_is_polled_and_never_written(tmp_path):
    make_toy_saved_model(tmp_path / "toy", 1)
    make_bytes_saved_model(tmp_path / "echo", 1)
    config = tmp_path / "my.config"
    config.write_text(config_text(tmp_path, ["toy"]))
    before = sorted(p.name for p in tmp_path.iterdir())
    with ModelServer(model_config_file=str(config), rest_port=0, grpc_port=None,
                     config_poll_seconds=0.2) as server:
        handle = Client.__new__(Client)
        handle.port = server.rest_port
        assert handle.versions("toy") == {1: "AVAILABLE"} and handle.versions("echo") == {}
        config.write_text(config_text(tmp_path, ["toy", "echo"], labels={"toy": {"stable": 1}}))
        wait_for(lambda: handle.versions("echo") == {1: "AVAILABLE"}, what="echo added")
        assert handle.rest("POST", "/v1/models/toy/labels/stable:predict",
                           {"instances": Z})[0] == 200
        config.write_text("model_config_list { config { name: ")  # malformed: kept serving
        time.sleep(0.6)
        assert handle.versions("echo") == {1: "AVAILABLE"}
        config.write_text(config_text(tmp_path, ["echo"]))
        wait_for(lambda: handle.versions("toy") == {1: "END"}, what="toy removed")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert config.read_text() == config_text(tmp_path, ["echo"])


# -- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["--base", "x", "--frobnicate=1"], "unknown flag --frobnicate"),
    (["--base", "x", "--ssl_config_file=/a"], "--ssl_config_file is a tensorflow_model_server "
                                               "flag this server does not support"),
    (["--base", "x", "--version-policy", "all"], "--version-policy was removed"),
    ([], "Both --model_base_path and --model_config_file are empty"),
    (["--base", "x", "--model_config_file=/a"], "give one of"),
])
def test_bad_flags_one_line_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_tf_serving_flags_parse_with_their_defaults():
    args = parse_args(["--port=9000", "--rest_api_port=9001", "--model_name=m",
                       "--model_base_path=/abs/m", "--rest_api_timeout_in_ms=5",
                       "--allow_version_labels_for_unavailable_models",
                       "--enable_serialization_as_tensor_content=false"])
    assert (args.port, args.rest_api_port, args.model_name, args.model_base_path) == (
        9000, 9001, "m", "/abs/m")
    assert args.rest_api_timeout_in_ms == 5 and args.allow_version_labels_for_unavailable_models
    assert not args.enable_serialization_as_tensor_content
    defaults = parse_args(["--model_config_file=/abs/c"])
    assert (defaults.rest_api_timeout_in_ms, defaults.host, defaults.port) == (
        30000, "127.0.0.1", 8500)  # TF Serving's 30 s; loopback unless --host opens it
    assert parse_args(["--base", "d", "--rest-port", "1", "--grpc-port", "2"]).port == 2
    assert defaults.web_page and not parse_args(["--base", "d", "--web_page=false"]).web_page


@pytest.mark.parametrize("body,message", [
    ("model_config_list { config { name: ", "Failed to parse"),
    ('model_config_list { config { name: "m" base_path: "BASE/missing" } }',
     "Could not find base path"),
    ('model_config_list { config { name: "m" base_path: "rel/m" } }', "absolute path"),
    ('model_config_list { config { name: "toy" base_path: "BASE/toy" version_labels { key: "a" '
     'value: 1 } } }', "which is not currently available for inference"),
])
def test_bad_config_at_start_is_one_line_and_exit_2(tmp_path, body, message, capsys):
    make_toy_saved_model(tmp_path / "toy", 1)
    config = tmp_path / "bad.config"
    config.write_text(body.replace("BASE", str(tmp_path)))
    code = main([f"--model_config_file={config}", "--rest_api_port=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and message in err[-1], err


def test_labels_on_unloaded_versions_need_the_allow_flag(tmp_path):
    make_toy_saved_model(tmp_path / "toy", 1)
    config = text_format.Parse(config_text(tmp_path, ["toy"], labels={"toy": {"canary": 2}}),
                               model_server_config_pb2.ModelServerConfig())
    with ModelServer(model_config=config, rest_port=0, grpc_port=None,
                     allow_version_labels_for_unavailable_models=True) as server:
        handle = Client.__new__(Client)
        handle.port = server.rest_port
        status, body = handle.rest("POST", "/v1/models/toy/labels/canary:predict",
                                   {"instances": Z})
        assert status == 404 and "Specific(toy, 2)" in body["error"]
        make_toy_saved_model(tmp_path / "toy", 2)
        wait_for(lambda: handle.rest("POST", "/v1/models/toy/labels/canary:predict",
                                     {"instances": Z})[0] == 200, what="canary to load")
