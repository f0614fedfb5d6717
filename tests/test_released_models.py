"""The released presets of zoo/presets.json, as a user gets them from a fresh clone: each loads
by name from the repository's releases/ folder, verified by its sha256, makes images, survives a
``keras.saving`` round trip and fine-tunes with ``fit``; the registry's files are all there and
the release payload stays under 150 MB with no model stored twice.
"""

import hashlib
import os
import subprocess

import keras
import numpy as np
import pytest

import zoo
from zoo import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTRY = presets.load_registry()
PRESETS = presets.list_presets(REGISTRY)
PAYLOAD_LIMIT = 150 * 2**20


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    """An empty Keras cache, so every preset comes through the download and verification path."""
    home = tmp_path_factory.mktemp("keras_home")
    previous = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(home)
    yield home
    if previous is None:
        del os.environ["KERAS_HOME"]
    else:
        os.environ["KERAS_HOME"] = previous


def test_the_registry_lists_the_dcgan_preset():
    assert "dcgan_fashion_mnist" in PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_registry_entry_matches_its_archive(name):
    entry = REGISTRY["presets"][name]
    path = os.path.join(ROOT, "releases", os.path.basename(entry["url"]))
    with open(path, "rb") as f:
        payload = f.read()
    assert len(payload) == entry["size_bytes"]
    assert hashlib.sha256(payload).hexdigest() == entry["sha256"]
    assert entry["metrics"] and entry["protocol"] and entry["licence"] != "unknown"
    assert entry["training"].get("wall_minutes", 0) > 0


def test_release_payload_is_under_150_mb_and_stores_no_model_twice():
    tracked = subprocess.run(["git", "ls-files", "-z", "releases", "saved_models"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    assert sum(os.path.getsize(os.path.join(ROOT, f)) for f in tracked if f) < PAYLOAD_LIMIT
    # a preset is not also committed as a SavedModel folder (pulled copies are not committed)
    assert not {f.split("/")[1] for f in tracked if f.startswith("saved_models/")} & set(PRESETS)


def fit_data(model, count=2, seed=0):
    """Random training data of the shapes the model trains on (what ``fit`` takes per kind)."""
    rng = np.random.default_rng(seed)
    translators = getattr(model, "translators", None)
    if translators:  # image-to-image: (inputs, targets) or (domain A, domain B)
        generator = next(iter(translators.values()))
        # the generators take any multiple of their stride; CycleGAN's image pools fix its size
        size = tuple(getattr(model, "image_shape", (model.generator_stride,) * 2)[:2])
        shapes = [size + (generator.input_shape[-1],), size + (generator.output_shape[-1],)]
        return tuple(rng.uniform(-1, 1, (count,) + tuple(s)).astype("float32") for s in shapes)
    return (rng.uniform(-1, 1, (count,) + tuple(model.image_shape)).astype("float32"),)


def generated(model, data):
    translators = getattr(model, "translators", None)
    if translators:
        return np.concatenate([np.asarray(g(data[0], training=False)).ravel()
                               for g in translators.values()])
    return np.asarray(model.sample(4, seed=0))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_by_name_round_trips_and_fine_tunes(name, keras_home, tmp_path):
    model = zoo.from_preset(name)
    assert os.listdir(keras_home / "models" / "gan_zoo")  # came through the Keras cache
    data = fit_data(model)
    images = generated(model, data)
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.1  # a trained generator, not a constant
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    if not getattr(model, "translators", None):  # pix2pix keeps its test-time dropout noise
        np.testing.assert_array_equal(generated(reloaded, data), images)
    reloaded.compile(*zoo.get_spec(reloaded.name).make_optimizers())
    history = reloaded.fit(*data, batch_size=2, epochs=1, verbose=0)
    assert int(reloaded.g_optimizer.iterations) > 0
    assert all(np.isfinite(v[-1]) for v in history.history.values())
