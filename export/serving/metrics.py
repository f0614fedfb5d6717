"""Prometheus metrics as TF Serving exports them (``--monitoring_config_file``).

With ``prometheus_config { enable: true }`` the REST port answers ``GET
/monitoring/prometheus/metrics`` (or the config's ``path``) in the Prometheus text format, with
TF Serving's metric names (servables/tensorflow/util.cc, util/prometheus_exporter.cc):

- ``:tensorflow:serving:request_count`` (counter) per model_name and status (the canonical code
  name, ``OK``, ``INVALID_ARGUMENT``...);
- ``:tensorflow:serving:request_latency`` (histogram, microseconds, TF Serving's buckets 10 x
  1.8^i) per model_name, API and entrypoint (``REST``/``GRPC``), successful requests only.

Both carry two more labels TF Serving does not have, ``version`` and ``signature_name``
(queries that match on TF Serving's labels still work). The text is written here rather than
with prometheus_client, whose counters would be renamed ``..._total`` and break dashboards
built on TF Serving's names; the tests parse it with prometheus_client's parser.
"""

from __future__ import annotations

import threading

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from export.serving.config import ConfigError

DEFAULT_PATH = "/monitoring/prometheus/metrics"
COUNT = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"
BUCKETS = [10 * 1.8 ** i for i in range(33)]  # monitoring::Buckets::Exponential(10, 1.8, 33)


def _monitoring_config_class():
    """TF Serving's MonitoringConfig (config/monitoring_config.proto), not in the pip package."""
    file = descriptor_pb2.FileDescriptorProto(name="gan_zoo/monitoring_config.proto",
                                              package="tensorflow.serving", syntax="proto3")
    field = descriptor_pb2.FieldDescriptorProto
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=field.LABEL_OPTIONAL,
                         type=field.TYPE_MESSAGE, type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


def read_monitoring_config(path) -> str | None:
    """The metrics path a monitoring config enables, or None (disabled)."""
    message = _monitoring_config_class()()
    try:
        with open(path, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), message)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read --monitoring_config_file {path}: {error}") from None
    except text_format.ParseError as error:
        raise ConfigError(f"Failed to parse {path} as MonitoringConfig: {error}") from None
    config = message.prometheus_config
    if not config.enable:
        return None
    if config.path and not config.path.startswith("/"):
        raise ConfigError(f"{path}: prometheus_config.path must start with '/', got {config.path!r}")
    return config.path or DEFAULT_PATH


def _labels(names, values) -> str:
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               for v in values)
    return ",".join(f'{n}="{v}"' for n, v in zip(names, escaped))


class Metrics:
    """Request counts and latency histograms, thread-safe, rendered as Prometheus text."""

    COUNT_LABELS = ("model_name", "version", "signature_name", "status")
    LATENCY_LABELS = ("model_name", "version", "signature_name", "API", "entrypoint")

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}
        self._latency: dict[tuple, list] = {}  # -> [bucket counts..., sum]

    def record(self, model, version, signature, api, entrypoint, status, seconds) -> None:
        version = "" if version is None else str(version)
        with self._lock:
            key = (model, version, signature, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            if status != "OK":
                return
            micros = seconds * 1e6
            cell = self._latency.setdefault((model, version, signature, api, entrypoint),
                                            [0] * (len(BUCKETS) + 1) + [0.0])
            index = next((i for i, limit in enumerate(BUCKETS) if micros <= limit), len(BUCKETS))
            cell[index] += 1
            cell[-1] += micros

    def render(self) -> str:
        with self._lock:
            counts = dict(self._counts)
            latency = {k: list(v) for k, v in self._latency.items()}
        lines = [f"# HELP {COUNT} The total number of requests.", f"# TYPE {COUNT} counter"]
        for key, value in sorted(counts.items()):
            lines.append(f"{COUNT}{{{_labels(self.COUNT_LABELS, key)}}} {value}")
        lines += [f"# HELP {LATENCY} Distribution of wall time (in microseconds) for "
                  "Tensorflow Serving request.", f"# TYPE {LATENCY} histogram"]
        for key, cell in sorted(latency.items()):
            labels = _labels(self.LATENCY_LABELS, key)
            cumulative = 0
            for i, count in enumerate(cell[:-1]):
                cumulative += count
                limit = f"{BUCKETS[i]:g}" if i < len(BUCKETS) else "+Inf"
                lines.append(f'{LATENCY}_bucket{{{labels},le="{limit}"}} {cumulative}')
            lines.append(f"{LATENCY}_sum{{{labels}}} {cell[-1]}")
            lines.append(f"{LATENCY}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"


class _Tracked:
    __slots__ = ("version", "signature")


class track:
    """``with track(metrics, model, "Predict", "GRPC") as request: ...; request.version = v``:
    counts the request with the status of the exception leaving the block (OK if none)."""

    def __init__(self, metrics: Metrics | None, model: str, api: str, entrypoint: str):
        self.metrics, self.model, self.api, self.entrypoint = metrics, model, api, entrypoint
        self.request = _Tracked()
        self.request.version, self.request.signature = None, "serving_default"

    def __enter__(self):
        import time

        self.start = time.monotonic()
        return self.request

    def __exit__(self, exc_type, exc, tb):
        import time

        if self.metrics is not None:
            status = "OK" if exc is None else getattr(exc, "code", "INTERNAL")
            self.metrics.record(self.model, self.request.version, self.request.signature,
                                self.api, self.entrypoint, status, time.monotonic() - self.start)
        return False
