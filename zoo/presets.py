"""Pretrained presets: ``zoo.from_preset("dcgan_fashion_mnist")`` downloads, verifies and loads a
trained model of the zoo.

The layout is keras-hub's (``keras_hub/src/utils/preset_utils.py``): a preset directory holds

- ``config.json``: ``keras.saving.serialize_keras_object(model)`` without compile/build configs,
- ``model.weights.h5``: ``model.save_weights`` of both networks, no optimizer state,
- ``metadata.json``: Keras/TF versions, parameter count, variant, data set, metrics,

plus the model card (``MODEL_CARD.md``, ``samples.png``). A preset is shipped as a ``.tar.gz``
of that directory. ``zoo/presets.json`` (the registry) lists every preset with its archive URL,
sha256, size, metrics with their protocol and licence. Archive URLs are relative to a release
base: the repository's ``releases/`` folder by default (a checkout works offline), or
``$GAN_ZOO_RELEASE_URL`` / ``release_url=`` (a mirror URL or a directory).

``from_preset`` downloads with ``keras.utils.get_file(..., file_hash=sha256)`` into the Keras
cache (``$KERAS_HOME/models/gan_zoo``), then extracts the verified archive into a temporary
directory renamed into place; a wrong hash leaves nothing in the cache, and a second call works
offline from the cache. The returned model is uncompiled, ready for ``sample``/``translate``,
``compile`` + ``fit`` (fine-tuning), ``save`` and ``export.saved_model.export_model``.
"""

from __future__ import annotations

import copy
import datetime
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.parse

import keras

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTRY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets.json")
RELEASE_URL_ENV = "GAN_ZOO_RELEASE_URL"
RELEASE_PLACEHOLDER = "{release_url}"
CACHE_SUBDIR = os.path.join("models", "gan_zoo")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
SAMPLES_FILE = "samples.png"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)


class PresetError(ValueError):
    """A preset that cannot be resolved, downloaded, verified or loaded; one line with the fix."""


# --- The registry -------------------------------------------------------------------------------

def load_registry(path=None):
    """The registry ``{"release_url": ..., "presets": {name: entry}}`` (``zoo/presets.json``)."""
    path = path or REGISTRY_PATH
    if not os.path.exists(path):
        return {"release_url": "releases", "presets": {}}
    with open(path) as f:
        return json.load(f)


def list_presets(registry=None):
    """Names of the presets in the registry."""
    return sorted((registry or load_registry())["presets"])


def get_preset(name, registry=None):
    """The registry entry of preset ``name``; PresetError listing the presets if unknown."""
    registry = registry or load_registry()
    try:
        return registry["presets"][name]
    except KeyError:
        raise PresetError(f"Unknown preset {name!r}; choose one of {list_presets(registry)} "
                          "(`python -m export.presets list`), or pass a preset directory or "
                          "archive URL.") from None


def _as_url(location):
    """A URL, or a local path (relative to the repository) turned into a ``file://`` URL."""
    if "://" in location:
        return location.rstrip("/")
    path = location if os.path.isabs(location) else os.path.join(REPOSITORY, location)
    return pathlib.Path(path).resolve().as_uri()


def release_url(override=None, registry=None):
    """The release base: ``override``, else ``$GAN_ZOO_RELEASE_URL``, else the registry's."""
    location = override or os.environ.get(RELEASE_URL_ENV) or (registry or load_registry())["release_url"]
    return _as_url(location)


def archive_url(entry, base):
    """The archive URL of a registry entry under release base ``base``."""
    return entry["url"].replace(RELEASE_PLACEHOLDER, base.rstrip("/"))


# --- Download, verification and extraction -----------------------------------------------------

def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root():
    """``$KERAS_HOME`` (read now, not at import) or Keras's default ``~/.keras``."""
    from keras.src.backend import config as backend_config  # get_file's default cache root

    return os.environ.get("KERAS_HOME") or backend_config.keras_home()


def cache_dir():
    """``$KERAS_HOME/models/gan_zoo``, where ``get_file`` keeps the archives and their extractions."""
    return os.path.join(cache_root(), CACHE_SUBDIR)


def download_archive(url, sha256=None, fname=None):
    """``keras.utils.get_file`` into the Keras cache, verified; nothing kept on failure."""
    fname = fname or os.path.basename(urllib.parse.urlsplit(url).path)
    target = os.path.join(cache_dir(), fname)
    os.makedirs(cache_dir(), exist_ok=True)  # else get_file falls back to /tmp/.keras
    try:
        return keras.utils.get_file(fname=fname, origin=url, file_hash=sha256, hash_algorithm="sha256",
                                    cache_dir=cache_root(), cache_subdir=CACHE_SUBDIR)
    except ValueError as error:
        if "hash does not match" not in str(error):
            raise
        got = sha256_of(target) if os.path.exists(target) else "nothing"
        if os.path.exists(target):
            os.remove(target)  # get_file keeps the bad file; the cache must not
        raise PresetError(f"{url} has sha256 {got[:16]}..., not the registry's {sha256[:16]}... "
                          "(corrupt or truncated archive; nothing kept in the cache): download it "
                          "again, or rebuild it with `python -m export.presets build`.") from None
    except Exception as error:
        if os.path.exists(target):
            os.remove(target)
        if "URL fetch failure" not in str(error):
            raise
        raise PresetError(f"Cannot download {url} ({str(error).split(' -- ')[-1]}): check the "
                          f"network, or set {RELEASE_URL_ENV} (or --release-url) to a mirror or a "
                          "directory holding the release archives.") from None


def extract_archive(archive, destination):
    """Extract a preset ``.tar.gz`` into ``destination`` atomically (temp dir + rename)."""
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-extract-", dir=parent)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")  # no absolute paths, links out or devices
        check_preset_dir(staging, what=archive)
        try:
            os.rename(staging, destination)
        except OSError:  # another process extracted it meanwhile
            if not os.path.isdir(destination):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise PresetError(f"{archive} is not a readable preset archive ({error}): delete it and "
                          "download again.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def check_preset_dir(directory, what=None):
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise PresetError(f"{what or directory} is not a preset: {', '.join(missing)} missing "
                          f"(a preset holds {', '.join(REQUIRED_FILES)}).")


def fetch(preset, release_url_override=None, sha256=None, registry=None):
    """A registry name, an archive URL or path, or a preset directory -> verified local directory."""
    if os.path.isdir(preset):
        check_preset_dir(preset)
        return preset
    registry = registry or load_registry()
    if preset in registry["presets"]:
        entry = registry["presets"][preset]
        url = archive_url(entry, release_url(release_url_override, registry))
        sha256, stem = entry["sha256"], f"{preset}-{entry['sha256'][:12]}"
    elif preset.endswith(".tar.gz"):
        url = preset if "://" in preset else _as_url(os.path.abspath(preset))
        name = os.path.basename(urllib.parse.urlsplit(url).path)[: -len(".tar.gz")]
        stem = f"{name}-{sha256[:12]}" if sha256 else f"{name}-unverified"
    else:
        get_preset(preset, registry)  # raises: unknown name
    archive = download_archive(url, sha256, fname=f"{stem}.tar.gz")
    destination = os.path.join(os.path.dirname(archive), stem)
    if sha256 is None:  # an unregistered archive: re-extract, nothing vouches for the cached copy
        shutil.rmtree(destination, ignore_errors=True)
    if not os.path.isdir(destination):
        extract_archive(archive, destination)
    return destination


# --- Loading -------------------------------------------------------------------------------------

def load_preset_dir(directory):
    """Build the model of ``config.json`` and load ``model.weights.h5`` (keras-hub's loader)."""
    import zoo  # noqa: F401  (registers the zoo's classes for deserialisation)

    with open(os.path.join(directory, CONFIG_FILE)) as f:
        config = json.load(f)
    model = keras.saving.deserialize_keras_object(config)
    model.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return model


def load_metadata(directory):
    with open(os.path.join(directory, METADATA_FILE)) as f:
        return json.load(f)


def from_preset(preset, kind=None, release_url=None, sha256=None):
    """Load a pretrained zoo model.

    Args:
        preset: a registry name (``python -m export.presets list``), a preset directory, or the
            URL/path of a preset ``.tar.gz`` (verified only if ``sha256`` is given).
        kind: if given (``"unconditional"``, ``"image_to_image"``...), refuse a preset of another
            kind with a one-line error instead of returning a model without ``sample``/``translate``.
        release_url: release base overriding ``$GAN_ZOO_RELEASE_URL`` and the registry's.
        sha256: expected hash of an archive given by URL.

    Returns:
        The uncompiled model; ``model.compile(*zoo.get_spec(model.name).make_optimizers())``
        before ``fit`` to fine-tune with the paper's optimizers.
    """
    directory = fetch(preset, release_url, sha256)
    metadata = load_metadata(directory)
    if kind is not None and metadata.get("kind") != kind:
        function = {"unconditional": "model.sample(n)", "image_to_image": "model.translate(images)"}
        raise PresetError(f"Preset {preset!r} is a {metadata.get('kind')} model "
                          f"({metadata.get('variant')}), not {kind}: load it without kind= and use "
                          f"{function.get(metadata.get('kind'), 'its own methods')}, or choose a "
                          f"{kind} preset.")
    return load_preset_dir(directory)


# --- Building ------------------------------------------------------------------------------------

def _pop_recursive(config, key):
    config.pop(key, None)
    for value in config.values():
        if isinstance(value, dict):
            _pop_recursive(value, key)


def save_preset(model, directory, metadata):
    """Write ``config.json``, ``model.weights.h5`` (no optimizer state) and ``metadata.json``."""
    config = keras.saving.serialize_keras_object(model)
    for key in ("compile_config", "build_config"):
        _pop_recursive(config, key)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)
    model.save_weights(os.path.join(directory, WEIGHTS_FILE))
    metadata = {
        "keras_version": keras.version(),
        "tensorflow_version": __import__("tensorflow").__version__,
        "parameter_count": int(model.count_params()),
        **metadata,
    }
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)


def write_archive(directory, path):
    """A reproducible ``.tar.gz`` of ``directory``'s files (sorted, zero mtimes and owners)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for name in sorted(os.listdir(directory)):
                info = tar.gettarinfo(os.path.join(directory, name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(os.path.join(directory, name), "rb") as f:
                    tar.addfile(info, f)
    from training.files import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())
    os.chmod(path, 0o644)  # a release file, readable by all (mkstemp made it private)


def _newest_evaluation(run_dir):
    path = os.path.join(run_dir, "evaluations.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return records[-1] if records else None


def training_summary(run_dir):
    """Completed epochs, generator steps, wall minutes and hardware of a run directory."""
    summary = {}
    for file in ("state.json", "run.json", "config.json"):
        path = os.path.join(run_dir, file)
        if os.path.exists(path):
            with open(path) as f:
                summary[file] = json.load(f)
    run, config = summary.get("run.json", {}), summary.get("config.json", {})
    training = config.get("training", {})
    epochs = summary.get("state.json", {}).get("epoch")
    out = {}
    if epochs is not None:
        out["epochs"] = int(epochs)  # completed epochs
    if training.get("steps_per_epoch") and "epochs" in out:
        out["generator_steps"] = int(training["steps_per_epoch"]) * out["epochs"]
    if run:
        out["wall_minutes"] = round(run["total_seconds"] / 60, 1)
        hardware = run["sessions"][-1]["hardware"]
        out["hardware"] = ", ".join(hardware["gpus"]) or f"CPU only, {hardware['cpu_count']} cores (shared)"
    recorded = sum(e - s for s, e in (session.get("epochs", (0, 0)) for session in run.get("sessions", [])))
    epoch_seconds = _epoch_seconds(run_dir)
    if "epochs" in out and recorded < out["epochs"] and epoch_seconds:
        # run.json times whole sessions; a session that was stopped (and resumed) left no record,
        # so the epochs' own times (history.csv) are the honest total
        out["wall_minutes"] = round(sum(epoch_seconds) / 60, 1)
    return out


def _epoch_seconds(run_dir):
    """The ``seconds`` column of the run's ``history.csv`` (one value per finished epoch)."""
    import csv

    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [float(row["seconds"]) for row in csv.DictReader(f) if row.get("seconds") not in (None, "", "NA")]


def build_preset(run_dir, name, releases_dir=None, registry_path=None, licence=None, description=None):
    """Build ``RELEASES/NAME.tar.gz`` from a finished run and record it in the registry.

    The model is loaded from ``RUN_DIR/model.keras`` without its optimizers; the run's config,
    newest evaluation and training time go into ``metadata.json``, its model card beside.
    Returns the registry entry.
    """
    from export.model_card import render_model_card
    from training.files import atomic_write_json
    from zoo.registry import get_spec

    model_file = os.path.join(run_dir, "model.keras")
    if not os.path.isfile(model_file):
        raise PresetError(f"No model at {model_file}: build a preset from a finished run directory.")
    if not name or os.sep in name or name.startswith("."):
        raise PresetError(f"Invalid preset name {name!r}: use a plain name like dcgan_fashion_mnist.")
    import zoo  # noqa: F401

    model = keras.saving.load_model(model_file, compile=False)  # weights only, no optimizer state
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    spec = get_spec(config["model"])
    evaluation = _newest_evaluation(run_dir)
    if evaluation is None:
        raise PresetError(f"{run_dir} has no evaluation: run `python -m training.evaluate {run_dir}` "
                          "first; a preset carries its measured quality.")
    metrics = dict(evaluation.get("metrics", {}))
    for baseline in ("baseline_input", "baseline_mean_colour"):
        for key, value in evaluation.get(baseline, {}).items():
            metrics[f"{key}_{baseline}"] = value
    registry_path = registry_path or REGISTRY_PATH
    releases_dir = releases_dir or os.path.join(REPOSITORY, "releases")
    registry = load_registry(registry_path)
    licence = licence or registry["presets"].get(name, {}).get("licence") or "unknown"
    entry = {
        "variant": spec.name,
        "kind": spec.kind,
        "dataset": config["dataset"],
        "paper": spec.paper,
        "description": description or registry["presets"].get(name, {}).get("description", ""),
        "licence": licence,
        "metrics": metrics,
        "protocol": evaluation.get("protocol", {}),
        "training": training_summary(run_dir),
        "parameter_count": int(model.count_params()),
    }
    with tempfile.TemporaryDirectory() as staging:
        save_preset(model, staging, {
            "preset": name, "variant": spec.name, "kind": spec.kind, "dataset": config["dataset"],
            "paper": spec.paper, "licence": licence, "metrics": metrics,
            "protocol": entry["protocol"], "training": entry["training"],
            "hyperparameters": config.get("hyperparameters", {}),
            "recovered_from": config.get("recovered_from"),
            "date_saved": datetime.datetime.fromtimestamp(
                os.path.getmtime(model_file), datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
        })
        grids = sorted(os.listdir(os.path.join(run_dir, "samples"))) if os.path.isdir(
            os.path.join(run_dir, "samples")) else []
        grids = [g for g in grids if g.startswith("epoch_") and g.endswith(".png")]
        if grids:
            shutil.copyfile(os.path.join(run_dir, "samples", grids[-1]), os.path.join(staging, SAMPLES_FILE))
        card = render_model_card(name, run_dir, ["built from this preset by `python -m export.presets pull`"],
                                 SAMPLES_FILE if grids else None, spec.name)
        with open(os.path.join(staging, CARD_FILE), "w") as f:
            f.write(card)
        archive = os.path.join(releases_dir, f"{name}.tar.gz")
        write_archive(staging, archive)
    entry.update({"url": f"{RELEASE_PLACEHOLDER}/{name}.tar.gz", "sha256": sha256_of(archive),
                  "size_bytes": os.path.getsize(archive)})
    registry = copy.deepcopy(registry)
    registry["presets"][name] = entry
    atomic_write_json(registry_path, registry)
    return entry
