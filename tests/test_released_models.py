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
import tensorflow as tf

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


def _translator_data(model, rng, count):
    """Image-to-image: (inputs, targets) or (domain A, domain B) batches."""
    generator = next(iter(model.translators.values()))
    # the generators take any multiple of their stride; CycleGAN's image pools fix its size
    size = tuple(getattr(model, "image_shape", (model.generator_stride,) * 2)[:2])
    shapes = [size + (generator.input_shape[-1],), size + (generator.output_shape[-1],)]
    return tf.data.Dataset.from_tensors(
        tuple(rng.uniform(-1, 1, (count,) + tuple(s)).astype("float32") for s in shapes))


def _translated(model, data):
    inputs = next(iter(data))[0]
    return np.concatenate([np.asarray(g(inputs, training=False)).ravel()
                           for g in model.translators.values()])


def _captioned_data(model, rng, count):
    return tf.data.Dataset.from_tensors({
        "images": rng.uniform(-1, 1, (count, 64, 64, 3)).astype("float32"),
        "text": tf.constant(["a red circle on the left", "a big blue box at the top"][:count])})


def _drawn_from_text(model, data):
    text = tf.constant(["a red circle on the left", "a small green triangle at the bottom"] * 2)
    return np.asarray(model.generate(text, tf.random.stateless_normal((4, model.latent_dim), (0, 1))))


def _image_data(model, rng, count):
    return tf.data.Dataset.from_tensors(
        rng.uniform(-1, 1, (count,) + tuple(model.image_shape)).astype("float32"))


def _photo_pairs(model, rng, count):
    hr = rng.integers(0, 256, (count, 48, 48, 3)).astype("float32")
    from training.super_resolution_data import pair_from_hr

    return tf.data.Dataset.from_tensors(pair_from_hr(hr))


def _upscaled(model, data):
    return np.clip(np.asarray(model.upscale(next(iter(data))[0])), -1, 1)


# per kind of model: (a batch of what ``fit`` takes, images it makes deterministically)
KIND_HELPERS = {
    "super_resolution": (_photo_pairs, _upscaled),
    "unconditional": (_image_data, lambda model, data: np.asarray(model.sample(4, seed=0))),
    "image_to_image": (_translator_data, _translated),
    "text_to_image": (_captioned_data, _drawn_from_text),
}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_by_name_round_trips_and_fine_tunes(name, keras_home, tmp_path):
    model = zoo.from_preset(name)
    assert os.listdir(keras_home / "models" / "gan_zoo")  # came through the Keras cache
    make_data, generated = KIND_HELPERS[REGISTRY["presets"][name]["kind"]]
    data = make_data(model, np.random.default_rng(0), 2)
    images = generated(model, data)
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.1  # a trained generator, not a constant
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    if not getattr(model, "translators", None):  # pix2pix keeps its test-time dropout noise
        np.testing.assert_array_equal(generated(reloaded, data), images)
    reloaded.compile(*zoo.get_spec(reloaded.name).make_optimizers())
    history = reloaded.fit(data, epochs=1, verbose=0)
    assert int(reloaded.g_optimizer.iterations) > 0
    assert all(np.isfinite(v[-1]) for v in history.history.values())


UNCONDITIONAL = [name for name in PRESETS if REGISTRY["presets"][name]["kind"] == "unconditional"]


def test_every_unconditional_preset_is_released():
    assert "dcgan_fashion_mnist" in UNCONDITIONAL


@pytest.mark.parametrize("name", UNCONDITIONAL)
def test_pulled_unconditional_preset_serves_inpaint_and_interpolate(name, keras_home, tmp_path):
    """What ``bin/main`` serves: the preset pulled into TF Serving's layout carries the latent
    signatures (docs/inpainting.md), answered over REST and gRPC by ``export.serve``."""
    import base64
    import io
    import json
    import urllib.request

    import grpc
    import tensorflow as tf
    from PIL import Image
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from export.presets import pull
    from export.serve import ModelServer

    pull(name, str(tmp_path))
    model = zoo.from_preset(name)
    height, width, _ = model.image_shape
    image = np.asarray(model.sample(1, seed=3))[0, ..., 0]
    photo = np.round((image + 1) * 127.5).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4:3 * height // 4, width // 4:3 * width // 4] = 255

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return {"b64": base64.b64encode(buffer.getvalue()).decode()}

    with ModelServer(str(tmp_path), rest_port=0, grpc_port=0, web_page=False) as server:
        body = {"signature_name": "inpaint_bytes",
                "instances": [{"image_bytes": png(photo), "mask_bytes": png(mask)}]}
        request = urllib.request.Request(f"http://{server.rest_address}/v1/models/{name}:predict",
                                         json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=300) as answer:
            encoded = json.loads(answer.read())["predictions"][0]["b64"]
        completed = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
        known = mask == 0
        assert completed.shape == (height, width)
        assert np.abs(completed[known].astype(int) - photo[known]).max() <= 1  # context kept
        # the hole is filled from a generator's sample: within reach of what was there
        assert np.abs(completed[~known].astype(int) - photo[~known]).mean() < 60

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_address))
        walk = predict_pb2.PredictRequest()
        walk.model_spec.name, walk.model_spec.signature_name = name, "interpolate"
        for key, value in (("seed_a", 1), ("seed_b", 7), ("steps", 5)):
            walk.inputs[key].CopyFrom(tf.make_tensor_proto(np.int64(value)))
        images = tf.make_ndarray(stub.Predict(walk, timeout=120).outputs["images"])
        assert images.shape == (5, height, width, 1)
        first = predict_pb2.PredictRequest()
        first.model_spec.name, first.model_spec.signature_name = name, "generate_from_seed"
        first.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
        sample = tf.make_ndarray(stub.Predict(first, timeout=120).outputs["images"])
        np.testing.assert_allclose(images[0], sample[0], atol=1e-4)  # the walk starts at seed 1


def test_the_commands_take_a_preset_name_where_they_take_a_run(keras_home, tmp_path):
    from export.saved_model import ExportError, load_trained_model

    assert load_trained_model("dcgan_fashion_mnist").name == "dcgan"
    with pytest.raises(ExportError, match="preset name"):
        load_trained_model(str(tmp_path / "no_such_run"))


IMAGE_IN = {  # released image-in preset -> (bytes signature, PNG mode of its answer, scale)
    "pix2pix_grey_to_colour": ("translate_bytes", "RGB", 1),
    "cyclegan_sneakers_and_boots": ("a_to_b_bytes", "L", 1),  # Fashion-MNIST: grey
    "srgan_photos": ("upscale_bytes", "RGB", 4),
}


@pytest.mark.parametrize("name", [name for name in IMAGE_IN if name in PRESETS])
def test_a_259x194_colour_jpeg_through_each_released_image_in_model_over_rest(name, tmp_path):
    """Issue #10: a photo of any size goes through the released pix2pix, CycleGAN and SRGAN
    (pulled as ``bin/main`` pulls them, served by ``export.serve``) and comes back at its size
    (4x for SRGAN); CycleGAN decodes the colour JPEG to its own channel count."""
    import base64
    import io
    import json
    import urllib.request

    from PIL import Image

    from export.presets import pull
    from export.serve import ModelServer

    signature, mode, scale = IMAGE_IN[name]
    pull(name, str(tmp_path))
    pixels = np.random.default_rng(0).integers(0, 256, (194, 259, 3), np.uint8)
    photo = base64.b64encode(tf.io.encode_jpeg(pixels).numpy()).decode()
    with ModelServer(str(tmp_path), rest_port=0, grpc_port=0, web_page=False) as server:
        body = {"signature_name": signature, "instances": [{"b64": photo}]}
        request = urllib.request.Request(f"http://{server.rest_address}/v1/models/{name}:predict",
                                         json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=300) as answer:
            encoded = json.loads(answer.read())["predictions"][0]["b64"]
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.size == (259 * scale, 194 * scale) and image.mode == mode
