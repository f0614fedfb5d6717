"""Loaded model versions: discovery under BASE, file-system polling, loading and lookups."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from export.serving.config import ConfigError, ModelEntry, directory_config, model_entries
from export.serving.errors import ServingError, invalid, not_found, tf_error_message
from export.serving.layout import find_versions

log = logging.getLogger("export.serve")

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"
_GRPC_CODE_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]


def dtype_label(dtype: np.dtype) -> str:
    """TensorFlow's name for a numpy dtype (object arrays hold strings)."""
    return "string" if dtype == object else np.dtype(dtype).name


def shape_label(shape) -> str:
    """``[?, 4]`` for a TensorShape or tuple."""
    dims = tf.TensorShape(shape)
    if dims.rank is None:
        return "[?...]"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims.as_list()) + "]"


# TF Serving's words when a session run outlives its timeout (DirectSession::WaitForNotification).
DEADLINE_MESSAGE = "Timed out waiting for notification"
_RUNNER = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="signature-call")


def deadline_exceeded() -> ServingError:
    return ServingError("DEADLINE_EXCEEDED", DEADLINE_MESSAGE)


def _error_from_tf(error: tf.errors.OpError) -> ServingError:
    """A TF runtime error as a ServingError with the op's own message (``tf_error_message``)."""
    code = error.error_code
    name = _GRPC_CODE_NAMES[code] if 0 < code < len(_GRPC_CODE_NAMES) else "UNKNOWN"
    return ServingError(name, tf_error_message(error.message))


class Signature:
    """One signature of a loaded SavedModel: input validation and the call itself."""

    def __init__(self, name: str, function, scheduler=None):
        self.name = name
        self.function = function
        self.scheduler = scheduler  # a batching.BatchScheduler with --enable_batching
        self.inputs: dict[str, tf.TensorSpec] = dict(function.structured_input_signature[1])
        self.outputs: dict[str, tf.TensorSpec] = dict(function.structured_outputs)
        self.input_dtypes = {k: np.dtype(s.dtype.as_numpy_dtype) for k, s in self.inputs.items()}

    def check_input_names(self, names) -> None:
        """INVALID_ARGUMENT in TF Serving's words (predict_util.cc) unless the names match."""
        sent, expected = set(names), set(self.inputs)
        if sent == expected:
            return
        raise invalid(f"input size does not match signature: {len(sent)}!={len(expected)} "
                      f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}})."
                      f" Sent extra: {{{','.join(sorted(sent - expected))}}}. Missing but "
                      f"required: {{{','.join(sorted(expected - sent))}}}.")

    def check_inputs(self, arrays: dict[str, np.ndarray]) -> None:
        """INVALID_ARGUMENT unless names, dtypes and shapes fit the signature."""
        self.check_input_names(arrays)
        for name, spec in self.inputs.items():
            array, expected = arrays[name], self.input_dtypes[name]
            if array.dtype != expected and not (expected == object and array.dtype.kind == "S"):
                raise invalid(f'Input "{name}" has dtype {dtype_label(array.dtype)}, but signature '
                              f'"{self.name}" expects {dtype_label(expected)}')
            if not spec.shape.is_compatible_with(array.shape):
                raise invalid(f'Input "{name}" has shape {shape_label(array.shape)}, but signature '
                              f'"{self.name}" expects {shape_label(spec.shape)}')

    def output_names(self, output_filter=()) -> list[str]:
        """The outputs to return: all, or the filtered ones (each must exist)."""
        for alias in output_filter:
            if alias not in self.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs "
                              f"expected to be in the set {{{','.join(sorted(self.outputs))}}}.")
        return list(output_filter) if output_filter else sorted(self.outputs)

    def __call__(self, arrays: dict[str, np.ndarray], output_filter=(),
                 deadline: float | None = None) -> dict[str, np.ndarray]:
        """Validate, run the signature and return the outputs as numpy arrays.

        ``deadline`` (``time.monotonic()`` seconds) bounds the wait: past it the caller gets
        DEADLINE_EXCEEDED, as TF Serving's session-run timeout answers. A call not started by
        then is never run; one already running in TensorFlow cannot be interrupted, its result
        is dropped.
        """
        self.check_inputs(arrays)
        wanted = self.output_names(output_filter)
        if self.scheduler is not None:
            return self.scheduler.run(self, arrays, wanted, deadline)
        if deadline is None:
            return self._run(arrays, wanted)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise deadline_exceeded()
        future = _RUNNER.submit(self._run_before, deadline, arrays, wanted)
        try:
            return future.result(timeout=remaining)
        except futures.TimeoutError:
            future.cancel()
            raise deadline_exceeded() from None

    def _run_before(self, deadline: float, arrays, wanted):
        if time.monotonic() >= deadline:
            raise deadline_exceeded()  # waited too long for a worker: do not start
        return self._run(arrays, wanted)

    def _run(self, arrays, wanted) -> dict[str, np.ndarray]:
        tensors = {k: tf.constant(v, dtype=self.inputs[k].dtype) for k, v in arrays.items()}
        try:
            result = self.function(**tensors)
        except tf.errors.OpError as error:
            raise _error_from_tf(error) from error
        return {name: result[name].numpy() for name in wanted}


def read_signature_defs(path: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """SignatureDefs of the ``serve`` meta graph, read from saved_model.pb(txt)."""
    saved_model = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return get_model_metadata_pb2.SignatureDefMap(signature_def=meta_graph.signature_def)
    raise ValueError(f"no meta graph tagged {SERVE_TAG!r} in {path}")


class Servable:
    """One loaded model version: its SignatureDefs and callable signatures."""

    def __init__(self, name: str, version: int, path: Path, scheduler=None):
        self.name, self.version, self.path = name, version, Path(path)
        self.signature_def_map = read_signature_defs(self.path)
        self._loaded = tf.saved_model.load(str(self.path), tags=[SERVE_TAG])
        self.signatures = {key: Signature(key, fn, scheduler)
                           for key, fn in self._loaded.signatures.items()}

    def signature(self, name: str = "") -> Signature:
        """The named signature (default ``serving_default``) or FAILED_PRECONDITION."""
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ServingError("FAILED_PRECONDITION",
                               f'Serving signature key "{name}" not found (signatures of '
                               f'{self.name} version {self.version}: '
                               f'{", ".join(sorted(self.signatures))})')
        return self.signatures[name]


def _fingerprint(path: Path) -> tuple:
    """(relative path, size, mtime) of every file under a version directory."""
    entries = []
    for root, _dirs, files in os.walk(path):
        for file in files:
            try:
                stat = os.stat(os.path.join(root, file))
            except OSError:
                continue
            entries.append((os.path.relpath(os.path.join(root, file), path), stat.st_size,
                            stat.st_mtime_ns))
    return tuple(sorted(entries))


@dataclass(frozen=True)
class VersionState:
    """TF Serving's ModelVersionStatus: START/LOADING/AVAILABLE/UNLOADING/END + health."""

    state: str
    error_code: str = "OK"
    error_message: str = ""


class ModelRepository:
    """The models a config names: polls their base paths, loads/unloads versions, answers lookups.

    ``set_config`` takes TF Serving's config entries (``export.serving.config``): each model's
    ``model_version_policy`` (latest N, all, specific) picks the versions to serve and its
    ``version_labels`` are checked as TF Serving does (ServerCore::UpdateModelVersionLabelMap):
    a label must point at a version available now unless ``allow_unavailable_labels`` is set
    (then only a label already pointing elsewhere is refused). A config that fails a check
    raises ConfigError and the previous one keeps serving. A new version is loaded before the
    old one is unloaded; a version that fails to load is retried once its files change.
    """

    def __init__(self, entries=(), allow_unavailable_labels=False, directory=None,
                 scheduler=None):
        self.allow_unavailable_labels = allow_unavailable_labels
        self.scheduler = scheduler
        self.directory = Path(directory) if directory is not None else None  # --base mode
        self._config_lock = threading.RLock()  # one config change or poll at a time
        self._lock = threading.Lock()          # the maps below, for request threads
        self._entries: dict[str, ModelEntry] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._available: dict[str, dict[int, Servable]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # -> fingerprint of the failed files
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if entries:
            self.set_config(entries)

    # -- lookups (any thread) -------------------------------------------------------------

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def model_directories(self) -> dict[str, Path]:
        with self._lock:
            return {name: entry.base_path for name, entry in self._entries.items()}

    @property
    def labels(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(labels) for name, labels in self._labels.items()}

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request (latest by default) or NOT_FOUND."""
        if label:
            version = self.resolve_label(name, label)
        with self._lock:
            versions = dict(self._available.get(name, {}))
            served = sorted(self._available)
        if not versions:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {request} (models being served: "
                            f"{', '.join(served) or 'none'})")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise not_found(f"Servable not found for request: Specific({name}, {version}) "
                            f"(available versions: {', '.join(map(str, sorted(versions)))})")
        return versions[version]

    def resolve_label(self, name: str, label: str) -> int:
        """The version a label points to, or INVALID_ARGUMENT as in TF Serving."""
        with self._lock:
            version = self._labels.get(name, {}).get(label)
        if version is None:
            raise invalid(f"Unrecognized servable version label: {label}")
        return version

    def version_states(self, name: str) -> dict[int, VersionState]:
        """Every version of a model seen so far and its state (newest first)."""
        with self._lock:
            states = dict(self._states.get(name, {}))
        return dict(sorted(states.items(), reverse=True))

    # -- config ---------------------------------------------------------------------------

    def set_config(self, entries) -> None:
        """Serve exactly ``entries`` (ModelEntry list), or raise ConfigError and change nothing."""
        entries = {entry.name: entry for entry in entries}
        with self._config_lock:
            for entry in entries.values():
                if not entry.base_path.is_dir():
                    raise ConfigError(f"Could not find base path {entry.base_path} for servable "
                                      f"{entry.name}", "NOT_FOUND")
            labels = self._checked_labels(entries)
            with self._lock:
                self._entries, self._labels = entries, labels
            self._reconcile_all()

    def _checked_labels(self, entries) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for entry in entries.values():
            for label, version in entry.labels:
                existing = self._labels.get(entry.name, {}).get(label)
                allowed = self.allow_unavailable_labels and existing in (None, version)
                if not allowed and version not in self._available.get(entry.name, {}):
                    raise ConfigError(f"Request to assign label to version {version} of model "
                                      f"{entry.name}, which is not currently available for "
                                      "inference", "FAILED_PRECONDITION")
                labels.setdefault(entry.name, {})[label] = int(version)
        return labels

    # -- polling --------------------------------------------------------------------------

    def poll(self) -> None:
        """One pass over every base path: load newly aspired versions, unload the others."""
        with self._config_lock:
            if self.directory is not None:  # --base: models come and go with their folders
                with self._lock:
                    self._entries = {e.name: e for e in
                                     model_entries(directory_config(self.directory))}
            self._reconcile_all()

    def _reconcile_all(self) -> None:
        with self._lock:
            entries = dict(self._entries)
        for name in sorted(set(entries) | set(self._available)):
            entry = entries.get(name)
            on_disk = find_versions(entry.base_path) if entry else {}
            self._reconcile(name, on_disk, entry.aspired(on_disk) if entry else set())

    def start_polling(self, seconds: float) -> None:
        """Poll every ``seconds`` on a daemon thread until ``stop_polling`` (<= 0: never)."""
        if seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_forever, args=(seconds,),
                                        name="model-repository-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _poll_forever(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.poll()
            except Exception:  # keep polling whatever happens on disk
                log.exception("File system poll failed")

    def _reconcile(self, name: str, on_disk: dict[int, Path], aspired: set[int]) -> None:
        for version in sorted(aspired - set(self._available.get(name, {})), reverse=True):
            self._load(name, version, on_disk[version])
        loaded = set(self._available.get(name, {}))
        stale = loaded - aspired
        if stale and (loaded & aspired or not aspired):  # keep serving until a successor is up
            for version in sorted(stale):
                self._unload(name, version)

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[version] = state

    def _load(self, name: str, version: int, path: Path) -> None:
        fingerprint = _fingerprint(path)
        if self._failed.get((name, version)) == fingerprint:
            return  # failed before and unchanged since
        self._set_state(name, version, VersionState("LOADING"))
        try:
            servable = Servable(name, version, path, self.scheduler)
        except Exception as error:
            self._failed[(name, version)] = fingerprint
            message = f"{type(error).__name__}: {error}".strip().split("\n\n")[0]
            self._set_state(name, version, VersionState("END", "UNKNOWN", message))
            log.warning("Failed to load servable version {name: %s version: %d} from %s: %s",
                        name, version, path, message)
            return
        self._failed.pop((name, version), None)
        with self._lock:
            self._available.setdefault(name, {})[version] = servable
            self._states.setdefault(name, {})[version] = VersionState("AVAILABLE")
        log.info("Loaded servable version {name: %s version: %d} from %s", name, version, path)

    def _unload(self, name: str, version: int) -> None:
        with self._lock:
            versions = self._available.get(name, {})
            versions.pop(version, None)
            if not versions:
                self._available.pop(name, None)
            self._states.setdefault(name, {})[version] = VersionState("END")
        log.info("Unloaded servable version {name: %s version: %d}", name, version)
