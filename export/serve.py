"""A TensorFlow Serving–compatible model server: ``tensorflow_model_server``'s command line,
config, REST and gRPC APIs over TF Serving's ``BASE/NAME/VERSION/`` SavedModel layout.

    python -m export.serve --model_config_file=/abs/models.config --rest_api_port=8501 --port=8500
    python -m export.serve --model_name=dcgan --model_base_path=/abs/saved_models/dcgan
    python -m export.serve --base saved_models          # project mode: every model folder there
    python -m export.serve write-config --base saved_models [--model_root /models] [--force]

Flags are tensorflow_model_server's (model_servers/main.cc) for what this server supports; a
flag of TF Serving it does not support is refused by name. Differences (loopback by default,
REST on 8501 by default, ``--host``, ``--max_request_bytes``, ``--base``): docs/serving.md.
The config is input only: it is never written. ``write-config`` writes a starter config for a
base directory, which starts real TF Serving unchanged:

    docker run -p 8501:8501 -p 8500:8500 -v $PWD/saved_models:/models tensorflow/serving \\
        --model_config_file=/models/models.config --model_config_file_poll_wait_seconds=60
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from export.serving import config as configs  # noqa: E402
from export.serving.batching import (BatchingParameters, BatchScheduler,  # noqa: E402
                                    read_batching_parameters)  # noqa: E402
from export.serving.config import ConfigError  # noqa: E402
from export.serving.grpc_api import make_grpc_server  # noqa: E402
from export.serving.metrics import Metrics, read_monitoring_config  # noqa: E402
from export.serving.layout import CONFIG_NAME, find_models, write_models_config  # noqa: E402
from export.serving.repository import ModelRepository  # noqa: E402
from export.serving.rest import RestApi, RestServer  # noqa: E402

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ModelServer", "main", "write_models_config"]

log = logging.getLogger("export.serve")
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


class ModelServer:
    """REST and gRPC front-ends over a ``ModelRepository`` fed by one config source.

    The source is exactly one of ``model_config_file`` (re-read every ``config_poll_seconds``
    when > 0, as ``--model_config_file_poll_wait_seconds``), ``model_config`` (a
    ModelServerConfig), ``model_base_path`` (+ ``model_name``) or ``base`` (every model folder
    under it, the project's mode). Ports: 0 picks a free port, None disables that API.
    """

    def __init__(self, base=None, host="127.0.0.1", rest_port=8501, grpc_port=8500, *,
                 model_config_file=None, model_config=None, model_name="default",
                 model_base_path=None, config_poll_seconds=0.0, poll_seconds=1.0,
                 max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, rest_timeout_ms=30000,
                 allow_version_labels_for_unavailable_models=False, tensor_content=False,
                 grpc_workers=8, web_page=True, batching=None, metrics_path=None):
        sources = [s for s in (base, model_config_file, model_config, model_base_path)
                   if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of base, model_config_file, model_config and "
                             "model_base_path")
        self.base = Path(base) if base is not None else None
        self.model_config_file = model_config_file
        self._static_config = model_config
        if model_base_path is not None:
            self._static_config = configs.single_model_config(model_name, model_base_path)
        self.host = host
        self.poll_seconds = poll_seconds
        self.config_poll_seconds = config_poll_seconds
        self.max_request_bytes = max_request_bytes
        self.rest_timeout_ms = rest_timeout_ms
        self.tensor_content = tensor_content
        self.web_page = web_page
        self.batching = batching  # BatchingParameters: --enable_batching
        self.metrics_path = metrics_path  # --monitoring_config_file's Prometheus path
        self.metrics = Metrics() if metrics_path else None
        self._scheduler = None
        self.repository = ModelRepository(
            allow_unavailable_labels=allow_version_labels_for_unavailable_models,
            directory=self.base)
        self._config = None
        self._ports = {"rest": rest_port, "grpc": grpc_port}
        self._grpc_workers = grpc_workers
        self._rest: RestServer | None = None
        self._grpc = None
        self._stop = threading.Event()
        self._config_thread: threading.Thread | None = None

    @property
    def rest_port(self) -> int | None:
        return self._rest.port if self._rest else self._ports["rest"]

    @property
    def grpc_port(self) -> int | None:
        return self._ports["grpc"]

    def _address(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    @property
    def rest_address(self) -> str:
        return self._address(self.rest_port)

    @property
    def grpc_address(self) -> str:
        return self._address(self.grpc_port)

    # -- config ---------------------------------------------------------------------------

    def _read_config(self):
        if self.model_config_file is not None:
            return configs.read_config(self.model_config_file)
        if self.base is not None:
            return configs.directory_config(self.base)
        return self._static_config

    def reload_config(self, config) -> None:
        """Serve ``config`` (a ModelServerConfig) or raise ConfigError keeping the current one."""
        entries = configs.model_entries(config)
        self.repository.set_config(entries)
        self._config = config
        log.info("Serving config with %d model(s): %s", len(entries),
                 ", ".join(e.name for e in entries) or "none")

    def _poll_config_forever(self) -> None:
        while not self._stop.wait(self.config_poll_seconds):
            try:
                config = configs.read_config(self.model_config_file)
                if config != self._config:
                    self.reload_config(config)
            except ConfigError as error:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s (still "
                          "serving the previous config)", error.message)
            except Exception:
                log.exception("Config poll failed")

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> "ModelServer":
        """Load the config's models, bind the ports and start serving and polling."""
        if self.base is not None and not self.base.is_dir():
            raise FileNotFoundError(f"model base directory not found: {self.base}")
        if self._ports["grpc"] is not None and self._ports["grpc"] == self._ports["rest"] != 0:
            raise ValueError("--rest_api_port cannot be the same as --port")
        if self.batching is not None and self._scheduler is None:
            self._scheduler = self.repository.scheduler = BatchScheduler(self.batching)
        try:
            self.reload_config(self._read_config())
        except BaseException:
            self.stop()
            raise
        try:
            web = self._web() if self.web_page else None
            if self._ports["rest"] is not None:
                self._rest = RestServer(RestApi(self.repository, self.rest_timeout_ms, web,
                                                self.metrics, self.metrics_path),
                                        self.host, self._ports["rest"], self.max_request_bytes)
            if self._ports["grpc"] is not None:
                self._grpc, self._ports["grpc"] = make_grpc_server(
                    self.repository, self.host, self._ports["grpc"], self.max_request_bytes,
                    self._grpc_workers, self.tensor_content, self.reload_config, self.metrics)
        except BaseException:
            self.stop()
            raise
        if self._rest is not None:
            self._rest.start()
        if self._grpc is not None:
            self._grpc.start()
        self.repository.start_polling(self.poll_seconds)
        self._stop.clear()
        if self.model_config_file is not None and self.config_poll_seconds > 0:
            self._config_thread = threading.Thread(target=self._poll_config_forever,
                                                   name="model-config-poll", daemon=True)
            self._config_thread.start()
        return self

    def _web(self):
        try:
            from export.web import WebPage
        except ImportError:
            return None
        return WebPage(self.repository.model_directories)

    def stop(self, grace: float = 2.0) -> None:
        """Stop polling and both servers (in-flight gRPC calls get ``grace`` seconds)."""
        self._stop.set()
        if self._config_thread is not None:
            self._config_thread.join()
            self._config_thread = None
        self.repository.stop_polling()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self._rest is not None:
            self._ports["rest"] = self._rest.port
            self._rest.stop()
            self._rest = None
        if self._scheduler is not None:
            self._scheduler.close()
            self._scheduler = self.repository.scheduler = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# -- command line ----------------------------------------------------------------------------

# tensorflow_model_server flags (model_servers/main.cc) this server does not implement.
UNSUPPORTED_TF_SERVING_FLAGS = (
    "grpc_socket_path", "rest_api_num_threads", "rest_api_enable_cors_support",
    "enable_per_model_batching_parameters", "num_load_threads", "num_unload_threads",
    "max_num_load_retries", "load_retry_interval_micros", "flush_filesystem_caches",
    "tensorflow_session_parallelism", "tensorflow_session_config_file",
    "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism", "use_alts_credentials",
    "ssl_config_file", "platform_config_file", "per_process_gpu_memory_fraction",
    "saved_model_tags", "grpc_channel_arguments", "enable_model_warmup",
    "num_request_iterations_for_warmup", "version", "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model", "num_tflite_pools", "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check", "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled", "enable_profiler", "thread_pool_factory_config_file",
    "mixed_precision", "skip_initialize_tpu", "enable_grpc_healthcheck_service")
# The project's earlier flags that are gone, and what replaced them.
REMOVED_FLAGS = {
    "version-policy": "put model_version_policy in the --model_config_file",
    "label": "put version_labels in the --model_config_file",
    "model-root": "use: python -m export.serve write-config --model_root ...",
    "no-write-config": "the server never writes a config any more",
    "write-config-only": "use: python -m export.serve write-config --base DIR",
}


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as every other start-up error
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m export.serve", allow_abbrev=False,
                     description="tensorflow_model_server-compatible REST + gRPC server.")
    add = parser.add_argument
    add("--port", "--grpc-port", dest="port", type=int, default=8500,
        help="gRPC port (0: gRPC off; then REST must be on)")
    add("--rest_api_port", "--rest-port", dest="rest_api_port", type=int, default=8501,
        help="REST port (0: REST off). TF Serving's default is 0; this server's is 8501")
    add("--rest_api_timeout_in_ms", type=int, default=30000,
        help="REST predict timeout; past it the answer is 504 DEADLINE_EXCEEDED (<=0: none)")
    add("--model_config_file", help="ModelServerConfig text proto to serve (absolute paths)")
    add("--model_config_file_poll_wait_seconds", type=float, default=0.0,
        help="re-read --model_config_file every N s (0: read once)")
    add("--model_name", default="default", help="with --model_base_path: the model's name")
    add("--model_base_path", help="serve this one model directory (absolute path)")
    add("--file_system_poll_wait_seconds", "--poll-seconds", dest="file_system_poll_wait_seconds",
        type=float, default=1.0, help="seconds between polls for new/removed versions")
    add("--allow_version_labels_for_unavailable_models", type=_bool, nargs="?", const=True,
        default=False, help="allow labels on versions not loaded yet")
    add("--enable_serialization_as_tensor_content", type=_bool, nargs="?", const=True,
        default=False, help="gRPC outputs packed in tensor_content instead of typed fields")
    add("--enable_batching", type=_bool, nargs="?", const=True, default=False,
        help="merge concurrent requests into one signature call (docs/serving.md)")
    add("--batching_parameters_file", help="BatchingParameters text proto (with --enable_batching)")
    add("--monitoring_config_file", help="MonitoringConfig text proto (Prometheus metrics)")
    add("--web_page", type=_bool, nargs="?", const=True, default=True,
        help="project flag: the page to try the models at / of the REST port (false: off)")
    add("--base", help="project mode: serve every model folder under this directory")
    add("--host", default="127.0.0.1",
        help="address both APIs bind (default loopback; 0.0.0.0 opens them, as TF Serving)")
    add("--max_request_bytes", "--max-request-bytes", dest="max_request_bytes", type=int,
        default=DEFAULT_MAX_REQUEST_BYTES, help="largest REST body / gRPC message accepted")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        name = item.lstrip("-").split("=", 1)[0]
        if not item.startswith("-"):
            parser.error(f"unexpected argument {item!r}")
        if name in UNSUPPORTED_TF_SERVING_FLAGS:
            parser.error(f"--{name} is a tensorflow_model_server flag this server does not "
                         "support (docs/serving.md lists the supported ones)")
        if name in REMOVED_FLAGS:
            parser.error(f"--{name} was removed: {REMOVED_FLAGS[name]}")
        parser.error(f"unknown flag --{name} (python -m export.serve --help lists the flags)")
    sources = [args.base, args.model_config_file, args.model_base_path]
    if sum(s is not None for s in sources) > 1:
        parser.error("give one of --model_config_file, --model_base_path and --base")
    if not any(s is not None for s in sources):
        parser.error("Both --model_base_path and --model_config_file are empty! (or use --base "
                     "DIR for every model folder under DIR)")
    if args.batching_parameters_file and not args.enable_batching:
        parser.error("--batching_parameters_file is set without setting --enable_batching to "
                     "true")
    if args.port == 0 and args.rest_api_port == 0:
        parser.error("--port and --rest_api_port are both 0: nothing to serve")
    return args


def write_config_command(argv) -> int:
    """``write-config``: a starter models.config for a base directory (latest version of each
    model, no labels), with base paths under ``--model_root`` (where docker mounts BASE)."""
    parser = _Parser(prog="python -m export.serve write-config", allow_abbrev=False,
                     description=write_config_command.__doc__)
    parser.add_argument("--base", default="saved_models")
    parser.add_argument("--model_root", default="/models",
                        help="BASE's path as the server sees it (docker -v ...:/models)")
    parser.add_argument("--force", action="store_true", help="replace an existing config")
    args = parser.parse_args(argv)
    base = Path(args.base)
    if not base.is_dir():
        print(f"error: model base directory not found: {base}", file=sys.stderr)
        return 2
    target = base / CONFIG_NAME
    names = sorted(find_models(base))
    if target.exists() and not args.force:
        from export.serving.layout import models_config_text

        if target.read_text(encoding="utf-8") != models_config_text(names, args.model_root):
            print(f"error: {target} exists and differs; pass --force to replace it",
                  file=sys.stderr)
            return 2
    print(write_models_config(base, args.model_root, names=names))
    return 0


def curl_example(rest_address: str, name: str, signatures=()) -> str:
    """Example requests for model ``name``, by its ``signatures``: two seeded samples of a
    model with ``generate_from_seed`` (unconditional and text-to-image GANs, whose
    ``inpaint_bytes`` takes two files), else an image file through the model's bytes signature
    (translation, super-resolution; PNGs come back base64-encoded)."""
    url = f"http://{rest_address}/v1/models/{name}"
    encoded = sorted(s for s in signatures if s.endswith("_bytes"))
    if encoded and "generate_from_seed" not in signatures:
        body = (f'{{"signature_name": "{encoded[0]}", "instances": [{{"b64": "\'$(base64 -w0 photo.png)\'"}}]}}')
        note = "  # photo.png: PNG/JPEG, height and width multiples of the generator's stride"
    else:
        body, note = '{"signature_name": "generate_from_seed", "instances": [1, 2]}', ""
    return (f"Try: curl -s -X POST {url}:predict -d '{body}'{note}\n"
            f"     curl -s {url}/metadata")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["write-config"]:
        return write_config_command(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        batching = None
        if args.enable_batching:
            batching = (read_batching_parameters(args.batching_parameters_file)
                        if args.batching_parameters_file else BatchingParameters())
        server = ModelServer(
            args.base, args.host, args.rest_api_port or None, args.port or None,
            model_config_file=args.model_config_file, model_name=args.model_name,
            model_base_path=args.model_base_path,
            config_poll_seconds=args.model_config_file_poll_wait_seconds,
            poll_seconds=args.file_system_poll_wait_seconds,
            max_request_bytes=args.max_request_bytes,
            rest_timeout_ms=args.rest_api_timeout_in_ms,
            allow_version_labels_for_unavailable_models=(
                args.allow_version_labels_for_unavailable_models),
            tensor_content=args.enable_serialization_as_tensor_content, batching=batching,
            web_page=args.web_page,
            metrics_path=(read_monitoring_config(args.monitoring_config_file)
                          if args.monitoring_config_file else None))
        server.start()
    except ConfigError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if server.rest_port and server.web_page:
        print(f"Web page: http://{server.rest_address}/ (try every served model)", flush=True)
    if server.rest_port:
        print(f"REST API at http://{server.rest_address}", flush=True)
    if server.grpc_port:
        print(f"gRPC API at {server.grpc_address}", flush=True)
    if server.rest_port:
        for name in server.repository.model_names():
            try:
                signatures = server.repository.get(name).signatures
            except Exception:
                continue
            print(curl_example(server.rest_address, name, signatures), flush=True)
    while not stop.wait(0.5):
        pass
    log.info("Shutting down")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
