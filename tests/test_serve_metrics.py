"""Prometheus metrics (--monitoring_config_file), scraped and parsed by prometheus_client."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from export.serve import ModelServer
from export.serving.config import ConfigError
from export.serving.metrics import DEFAULT_PATH, read_monitoring_config
from tests.serving_fixtures import make_toy_saved_model

Z = [[0.1, -0.2, 0.3, 0.9]]


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, json.dumps(body).encode())
    status = conn.getresponse().status
    conn.close()
    return status


def scrape(port, path=DEFAULT_PATH):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        return {f.name: f for f in text_string_to_metric_families(answer.read().decode())}


def test_request_counts_and_latency_histograms(tmp_path):
    make_toy_saved_model(tmp_path / "toy", 1)
    with ModelServer(tmp_path, rest_port=0, grpc_port=0, metrics_path=DEFAULT_PATH) as server:
        for _ in range(3):
            assert post(server.rest_port, "/v1/models/toy:predict", {"instances": Z}) == 200
        assert post(server.rest_port, "/v1/models/toy:predict", {"instances": [[1]]}) == 400
        assert post(server.rest_port, "/v1/models/nope:predict", {"instances": Z}) == 404
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(server.grpc_address))
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "toy", "generate_from_seed"
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.int64([1, 2])))
        stub.Predict(request, timeout=30)
        families = scrape(server.rest_port)
    counts = {(s.labels["model_name"], s.labels["version"], s.labels["signature_name"],
               s.labels["status"]): s.value
              for s in families[":tensorflow:serving:request_count"].samples}
    assert counts == {("toy", "1", "serving_default", "OK"): 3,
                      ("toy", "1", "serving_default", "INVALID_ARGUMENT"): 1,
                      ("nope", "", "serving_default", "NOT_FOUND"): 1,
                      ("toy", "1", "generate_from_seed", "OK"): 1}
    latency = families[":tensorflow:serving:request_latency"]
    assert latency.type == "histogram"
    totals = {(s.labels["entrypoint"], s.labels["signature_name"]): s.value
              for s in latency.samples if s.name.endswith("_count")}
    assert totals == {("REST", "serving_default"): 3, ("GRPC", "generate_from_seed"): 1}
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")
               and s.labels["entrypoint"] == "REST"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 3
    assert all(a.value <= b.value for a, b in zip(buckets, buckets[1:]))  # cumulative


def test_metrics_only_when_the_monitoring_config_enables_them(tmp_path):
    make_toy_saved_model(tmp_path / "toy", 1)
    config = tmp_path / "monitoring.config"
    config.write_text('prometheus_config { enable: true path: "/metrics" }')
    assert read_monitoring_config(config) == "/metrics"
    config.write_text("prometheus_config { enable: false }")
    assert read_monitoring_config(config) is None
    config.write_text("prometheus_config { enable: maybe }")
    with pytest.raises(ConfigError, match="Failed to parse"):
        read_monitoring_config(config)
    with ModelServer(tmp_path, rest_port=0, grpc_port=None) as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}{DEFAULT_PATH}")
        assert refused.value.code == 404
