"""A TensorFlow Serving–compatible model server for the SavedModels under ``BASE/NAME/VERSION/``.

    python -m export.serve [--base saved_models] [--rest-port 8501] [--grpc-port 8500]
                           [--host 127.0.0.1] [--poll-seconds 2] [--max-request-bytes N]
    python -m export.serve --write-config-only [--base saved_models]

Speaks TF Serving's REST API (``/v1/models/NAME[/versions/N|/labels/L][:predict|/metadata]``)
and its gRPC ``PredictionService`` (Predict, GetModelMetadata) and ``ModelService``
(GetModelStatus). Serves the highest version of every model under BASE and polls BASE for new
and removed versions. Port 0 picks a free port. SIGTERM/SIGINT shut it down cleanly.

The same directory works with real TF Serving, using the ``models.config`` written here:

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

from export.serving.grpc_api import make_grpc_server  # noqa: E402
from export.serving.layout import find_models, write_models_config  # noqa: E402
from export.serving.repository import VERSION_POLICIES, ModelRepository  # noqa: E402
from export.serving.rest import RestApi, RestServer  # noqa: E402

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ModelServer", "main", "write_models_config"]

log = logging.getLogger("export.serve")
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


class ModelServer:
    """REST and gRPC front-ends over a polled ``ModelRepository``.

    ``labels`` maps model -> {label: version} (TF Serving's ``version_labels``). With
    ``write_config`` (default), ``BASE/models.config`` is (re)written on start and whenever the
    set of models changes, with base paths under ``model_root``.
    """

    def __init__(self, base="saved_models", host="127.0.0.1", rest_port=8501, grpc_port=8500, *,
                 poll_seconds=2.0, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
                 version_policy="latest", labels=None, write_config=True, model_root="/models",
                 grpc_workers=8):
        self.base = Path(base)
        self.host = host
        self.poll_seconds = poll_seconds
        self.max_request_bytes = max_request_bytes
        self.write_config = write_config
        self.model_root = model_root
        self.repository = ModelRepository(self.base, version_policy, labels,
                                          on_models_changed=self._models_changed)
        self._ports = {"rest": rest_port, "grpc": grpc_port}
        self._grpc_workers = grpc_workers
        self._rest: RestServer | None = None
        self._grpc = None

    @property
    def rest_port(self) -> int:
        return self._rest.port if self._rest else self._ports["rest"]

    @property
    def grpc_port(self) -> int:
        return self._ports["grpc"]

    def _address(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    @property
    def rest_address(self) -> str:
        return self._address(self.rest_port)

    @property
    def grpc_address(self) -> str:
        return self._address(self.grpc_port)

    def start(self) -> "ModelServer":
        """Load what is under BASE, bind both ports and start serving and polling."""
        if not self.base.is_dir():
            raise FileNotFoundError(f"model base directory not found: {self.base}")
        self.repository.poll()
        try:
            self._rest = RestServer(RestApi(self.repository), self.host, self._ports["rest"],
                                    self.max_request_bytes)
            self._grpc, self._ports["grpc"] = make_grpc_server(
                self.repository, self.host, self._ports["grpc"], self.max_request_bytes,
                self._grpc_workers)
        except BaseException:
            self.stop()
            raise
        self._rest.start()
        self._grpc.start()
        self.repository.start_polling(self.poll_seconds)
        log.info("Serving %s: REST on %s, gRPC on %s", self.base, self.rest_address,
                 self.grpc_address)
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop polling and both servers (in-flight gRPC calls get ``grace`` seconds)."""
        self.repository.stop_polling()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self._rest is not None:
            self._ports["rest"] = self._rest.port
            self._rest.stop()
            self._rest = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _models_changed(self, names) -> None:
        if not self.write_config:
            return
        try:
            write_models_config(self.base, self.model_root, self.repository.version_policy,
                                self.repository.labels, names)
        except OSError as error:  # e.g. a read-only mount: serving goes on
            log.warning("Cannot write %s: %s", self.base / "models.config", error)


def parse_label(text: str) -> tuple[str, str, int]:
    """``MODEL:LABEL=VERSION`` -> (model, label, version)."""
    try:
        model, rest = text.split(":", 1)
        label, version = rest.split("=", 1)
        if model and label:
            return model, label, int(version)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected MODEL:LABEL=VERSION, got {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.serve",
        description="TF Serving–compatible REST + gRPC server for BASE/NAME/VERSION SavedModels.")
    parser.add_argument("--base", default="saved_models", help="model base directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (both APIs)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: any free)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (0: any free)")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="seconds between file-system polls for new/removed versions")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="largest REST body / gRPC message accepted")
    parser.add_argument("--version-policy", choices=VERSION_POLICIES, default="latest",
                        help="TF Serving's model_version_policy: keep the latest or all versions")
    parser.add_argument("--label", type=parse_label, action="append", default=[],
                        metavar="MODEL:LABEL=VERSION", help="a version label (repeatable)")
    parser.add_argument("--model-root", default="/models",
                        help="where BASE is mounted for real TF Serving (models.config paths)")
    parser.add_argument("--no-write-config", dest="write_config", action="store_false",
                        help="do not write BASE/models.config")
    parser.add_argument("--write-config-only", action="store_true",
                        help="write BASE/models.config and exit")
    return parser.parse_args(argv)


def _labels(entries) -> dict[str, dict[str, int]]:
    labels: dict[str, dict[str, int]] = {}
    for model, label, version in entries:
        labels.setdefault(model, {})[label] = version
    return labels


def curl_example(rest_address: str, name: str, signatures=()) -> str:
    """Example requests for model ``name``, by its ``signatures``: two seeded samples of an
    unconditional GAN, or an image file through a translation model's bytes signature (PNGs
    come back base64-encoded)."""
    url = f"http://{rest_address}/v1/models/{name}"
    encoded = sorted(s for s in signatures if s.endswith("_bytes"))
    if encoded:
        body = (f'{{"signature_name": "{encoded[0]}", "instances": [{{"b64": "\'$(base64 -w0 photo.png)\'"}}]}}')
        note = "  # photo.png: PNG/JPEG, height and width multiples of the generator's stride"
    else:
        body, note = '{"signature_name": "generate_from_seed", "instances": [1, 2]}', ""
    return (f"Try: curl -s -X POST {url}:predict -d '{body}'{note}\n"
            f"     curl -s {url}/metadata")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    labels = _labels(args.label)
    if args.write_config_only:
        if not Path(args.base).is_dir():
            print(f"error: model base directory not found: {args.base}", file=sys.stderr)
            return 2
        print(write_models_config(args.base, args.model_root, args.version_policy, labels))
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ModelServer(args.base, args.host, args.rest_port, args.grpc_port,
                         poll_seconds=args.poll_seconds, max_request_bytes=args.max_request_bytes,
                         version_policy=args.version_policy, labels=labels,
                         write_config=args.write_config, model_root=args.model_root)
    try:
        server.start()
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"REST API at http://{server.rest_address}", flush=True)
    print(f"gRPC API at {server.grpc_address}", flush=True)
    for name in sorted(find_models(args.base)):
        signatures = server.repository.get(name).signatures
        print(curl_example(server.rest_address, name, signatures), flush=True)
    while not stop.wait(0.5):
        pass
    log.info("Shutting down")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
