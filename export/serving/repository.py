"""Loaded model versions: discovery under BASE, file-system polling, loading and lookups."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from export.serving.errors import ServingError, invalid, not_found, tf_error_message
from export.serving.layout import find_models

log = logging.getLogger("export.serve")

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"
VERSION_POLICIES = ("latest", "all")
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


def _error_from_tf(error: tf.errors.OpError) -> ServingError:
    """A TF runtime error as a ServingError with the op's own message (``tf_error_message``)."""
    code = error.error_code
    name = _GRPC_CODE_NAMES[code] if 0 < code < len(_GRPC_CODE_NAMES) else "UNKNOWN"
    return ServingError(name, tf_error_message(error.message))


class Signature:
    """One signature of a loaded SavedModel: input validation and the call itself."""

    def __init__(self, name: str, function):
        self.name = name
        self.function = function
        self.inputs: dict[str, tf.TensorSpec] = dict(function.structured_input_signature[1])
        self.outputs: dict[str, tf.TensorSpec] = dict(function.structured_outputs)
        self.input_dtypes = {k: np.dtype(s.dtype.as_numpy_dtype) for k, s in self.inputs.items()}

    def check_input_names(self, names) -> None:
        """INVALID_ARGUMENT naming the unknown and missing inputs, if any."""
        sent, expected = set(names), set(self.inputs)
        if sent == expected:
            return
        problems = []
        if sent - expected:
            problems.append("unknown input(s): " + ", ".join(sorted(sent - expected)))
        if expected - sent:
            problems.append("missing input(s): " + ", ".join(sorted(expected - sent)))
        raise invalid(f'Inputs do not match signature "{self.name}": {"; ".join(problems)} '
                      f'(expected: {", ".join(sorted(expected))})')

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

    def __call__(self, arrays: dict[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        """Validate, run the signature and return the outputs as numpy arrays."""
        self.check_inputs(arrays)
        wanted = self.output_names(output_filter)
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

    def __init__(self, name: str, version: int, path: Path):
        self.name, self.version, self.path = name, version, Path(path)
        self.signature_def_map = read_signature_defs(self.path)
        self._loaded = tf.saved_model.load(str(self.path), tags=[SERVE_TAG])
        self.signatures = {key: Signature(key, fn) for key, fn in self._loaded.signatures.items()}

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
    """Every model under BASE: polls the directory, loads/unloads versions, answers lookups.

    ``version_policy`` is TF Serving's: ``"latest"`` keeps only the highest version loaded,
    ``"all"`` every version (unversioned requests still go to the highest). A new version is
    loaded before the old one is unloaded; a version that fails to load is retried once its
    files change, and meanwhile the old one keeps serving.
    """

    def __init__(self, base, version_policy="latest", labels=None, on_models_changed=None):
        if version_policy not in VERSION_POLICIES:
            raise ValueError(f"version_policy must be one of {VERSION_POLICIES}")
        self.base = Path(base)
        self.version_policy = version_policy
        self.labels = {name: dict(mapping) for name, mapping in (labels or {}).items()}
        self.on_models_changed = on_models_changed
        self._lock = threading.Lock()
        self._available: dict[str, dict[int, Servable]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # -> fingerprint of the failed files
        self._model_names: list[str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lookups (any thread) -------------------------------------------------------------

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
        try:
            return int(self.labels[name][label])
        except KeyError:
            raise invalid(f"Unrecognized servable version label: {label}") from None

    def version_states(self, name: str) -> dict[int, VersionState]:
        """Every version of a model seen so far and its state (newest first)."""
        with self._lock:
            states = dict(self._states.get(name, {}))
        return dict(sorted(states.items(), reverse=True))

    # -- polling --------------------------------------------------------------------------

    def poll(self) -> None:
        """One pass: load new aspired versions, then unload versions no longer aspired."""
        found = find_models(self.base)
        for name in sorted(set(found) | set(self._available)):
            self._reconcile(name, found.get(name, {}))
        names = sorted(found)
        if names != self._model_names:
            self._model_names = names
            if self.on_models_changed is not None:
                self.on_models_changed(names)

    def start_polling(self, seconds: float) -> None:
        """Poll every ``seconds`` on a daemon thread until ``stop_polling``."""
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
                log.exception("Polling %s failed", self.base)

    def _aspired(self, on_disk: dict[int, Path]) -> set[int]:
        if not on_disk:
            return set()
        return set(on_disk) if self.version_policy == "all" else {max(on_disk)}

    def _reconcile(self, name: str, on_disk: dict[int, Path]) -> None:
        aspired = self._aspired(on_disk)
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
            servable = Servable(name, version, path)
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
