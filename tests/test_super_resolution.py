"""SRResNet and SRGAN: the paper's networks, the model contract, --init-from, data, quality,
export and serving (REST and gRPC through export.serve), and any photo size for every image-in
model's bytes signature."""

import base64
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from export.saved_model import export_model
from export.super_resolution import super_resolution_archive
from tests.model_contract import reload_cleanly
from tests.test_serve_translation import Client, assert_clear_grpc_error, assert_clear_rest_error
from training import super_resolution_data as sr_data
from training import super_resolution_quality as quality
from training import train
from zoo.models import srgan as srgan_module

TINY = dict(residual_blocks=1, filters=8, image_shape=(16, 16, 3))
TINY_GAN = dict(TINY, discriminator_filters=4, content_loss="vgg22", content_weights=None)


def compiled(name, **overrides):
    model = zoo.build_model(name, **{**(TINY_GAN if name == "srgan" else TINY), **overrides})
    model.compile(*zoo.get_spec(name).make_optimizers())
    return model


def pairs(count=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (count, size, size, 3)).astype(np.float32)
    lr, hr = sr_data.pair_from_hr(hr)
    return lr.numpy(), hr.numpy()


# --- The paper's networks ---------------------------------------------------------------------


def test_paper_sized_generator_and_discriminator():
    generator = srgan_module.srresnet_generator()  # B = 16, 64 filters
    residual_convs = [layer for layer in generator.layers if "_conv_" in layer.name]
    assert len(residual_convs) == 32 and {layer.filters for layer in residual_convs} == {64}
    assert generator.count_params() == 1_554_883  # Ledig 2017's SRResNet: about 1.5M
    assert sum(isinstance(layer, srgan_module.PixelShuffle) for layer in generator.layers) == 2
    assert generator(np.zeros((1, 7, 5, 3), np.float32)).shape == (1, 28, 20, 3)
    discriminator = srgan_module.srgan_discriminator(96)
    convs = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.strides[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    dense = [layer.units for layer in discriminator.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [1024, 1]


def test_pixel_shuffle_is_depth_to_space():
    x = np.arange(2 * 3 * 4 * 8, dtype=np.float32).reshape(2, 3, 4, 8)
    expected = x.reshape(2, 3, 4, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(2, 6, 8, 2)
    np.testing.assert_array_equal(np.asarray(srgan_module.PixelShuffle(2)(x)), expected)


def test_upscaling_layers_declare_their_output_shapes():
    assert srgan_module.PixelShuffle(2).compute_output_shape((None, 3, None, 8)) == (None, 6, None, 2)
    assert srgan_module.BicubicUpscale(4).compute_output_shape((2, None, 5, 3)) == (2, None, 20, 3)


def test_registry_defaults_are_the_papers():
    for name in ("srresnet", "srgan"):
        spec = zoo.get_spec(name)
        assert spec.kind == "super_resolution" and spec.training["batch_size"] == 16
        for key in ("g_optimizer", "d_optimizer"):
            assert spec.training[key]["config"]["learning_rate"] == 1e-4
            assert spec.training[key]["config"]["beta_1"] == 0.9
        assert spec.defaults["image_shape"] == (96, 96, 3) and spec.defaults["residual_blocks"] == 16
    assert zoo.get_spec("srgan").defaults["content_loss"] == "vgg54"
    assert zoo.get_spec("srgan").defaults["adversarial_weight"] == 1e-3
    assert zoo.get_spec("srgan").defaults["feature_scale"] == 1 / 12.75
    assert zoo.get_spec("srresnet").defaults["content_loss"] == "mse"


def test_vgg54_content_network_is_vgg19_to_block5_conv4():
    network = srgan_module.content_network("vgg54", weights=None)
    convs = [layer.name for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 16 and convs[-1] == "block5_conv4"
    assert network.output_shape[-1] == 512 and not network.trainable_variables


def test_imagenet_weights_offline_is_one_clear_error(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(ValueError, match="could not be loaded .*content_weights=PATH.weights.h5"):
        zoo.build_model("srgan", **dict(TINY_GAN, content_weights="imagenet"))


def test_content_losses_are_the_formulas():
    lr, hr = pairs()
    model = compiled("srgan")
    sr = np.asarray(model.upscale(lr))
    features = lambda x: np.asarray(model.content_network(x))  # noqa: E731
    expected = np.mean((srgan_module.VGG_FEATURE_SCALE * (features(hr) - features(sr))) ** 2)
    np.testing.assert_allclose(float(model.content_loss(hr, sr)), expected, rtol=1e-4)
    rescaled = compiled("srgan", feature_scale=0.5)
    rescaled.content_network.set_weights(model.content_network.get_weights())
    expected = np.mean((0.5 * (features(hr) - features(sr))) ** 2)
    np.testing.assert_allclose(float(rescaled.content_loss(hr, sr)), expected, rtol=1e-4)
    mse = compiled("srresnet")
    np.testing.assert_allclose(float(mse.content_loss(hr, sr)), np.mean((hr - sr) ** 2), rtol=1e-5)


# --- The model contract -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["srresnet", "srgan"])
def test_train_save_reload_continue(name, tmp_path):
    model = compiled(name)
    lr, hr = pairs(8)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    history = model.fit(lr, hr, batch_size=4, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(model.g_optimizer.iterations) == 2
    assert int(model.d_optimizer.iterations) == (2 if name == "srgan" else 0)
    model.save(tmp_path / "m.keras")
    reloaded = reload_cleanly(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(reloaded.upscale(lr)), np.asarray(model.upscale(lr)), atol=1e-5)
    reloaded.fit(lr, hr, batch_size=4, epochs=1, verbose=0)
    assert int(reloaded.g_optimizer.iterations) == 4


def test_bicubic_skip_starts_as_bicubic_and_learns_a_residual(tmp_path):
    lr, hr = pairs(8)
    model = compiled("srresnet", bicubic_skip=True)
    odd = np.random.default_rng(1).uniform(-1, 1, (2, 7, 5, 3)).astype(np.float32)
    expected = tf.image.resize(odd, (28, 20), method="bicubic")  # untrained: exactly bicubic
    np.testing.assert_allclose(np.asarray(model.generator(odd)), np.asarray(expected), atol=1e-6)
    model.fit(lr, hr, batch_size=4, epochs=2, verbose=0)
    residual = np.asarray(model.generator(lr)) - np.asarray(tf.image.resize(lr, (16, 16), method="bicubic"))
    assert np.abs(residual).max() > 1e-4  # the zero-initialised residual conv has moved
    model.save(tmp_path / "skip.keras")
    reloaded = reload_cleanly(tmp_path / "skip.keras")
    np.testing.assert_allclose(np.asarray(reloaded.upscale(lr)), np.asarray(model.upscale(lr)), atol=1e-5)
    without = compiled("srgan")
    with pytest.raises(ValueError, match="bicubic_skip=True.*does not match.*bicubic_skip=False"):
        srgan_module.init_generator_from(without, str(tmp_path / "skip.keras"))


@pytest.fixture(scope="module")
def srresnet_run(tmp_path_factory):
    """A tiny SRResNet trained by ``python -m training.train`` on the real photos."""
    run = tmp_path_factory.mktemp("runs") / "srresnet"
    code = train.main(["srresnet", "--dataset", "photos", "--out", str(run), "--epochs", "1",
                       "--steps-per-epoch", "2", "--batch-size", "2", "--set", "residual_blocks=1",
                       "--set", "filters=8", "--set", "image_shape=[16,16,3]"])
    assert code == 0 and (run / "model.keras").exists() and (run / "samples" / "epoch_001.png").exists()
    return run


def test_srgan_starts_from_the_srresnet_run(srresnet_run, tmp_path):
    source = keras.saving.load_model(srresnet_run / "model.keras")
    model = compiled("srgan")
    srgan_module.init_generator_from(model, str(srresnet_run))
    for a, b in zip(model.generator.weights, source.generator.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    code = train.main(["srgan", "--dataset", "photos", "--out", str(tmp_path / "gan"), "--epochs", "1",
                       "--steps-per-epoch", "1", "--batch-size", "2", "--init-from", str(srresnet_run),
                       *sum((["--set", f"{k}={json.dumps(v)}"] for k, v in TINY_GAN.items()), [])])
    assert code == 0


@pytest.mark.parametrize("what,message", [
    ("other_model", "holds a 'dcgan' model; --init-from needs an srresnet or srgan run"),
    ("other_shape", "does not match this model's"),
    ("missing", "no finished run at"),
])
def test_init_from_a_wrong_run_is_one_line_and_writes_nothing(srresnet_run, tmp_path, capsys, what,
                                                              message):
    source = {"other_model": tmp_path / "dcgan", "other_shape": srresnet_run,
              "missing": tmp_path / "nothing"}[what]
    if what == "other_model":
        source.mkdir()
        zoo.build_model("dcgan", latent_dim=4, generator_width=4, discriminator_width=4).save(
            source / "model.keras")
    filters = "16" if what == "other_shape" else "8"
    code = train.main(["srgan", "--out", str(tmp_path / "run"), "--dataset", "photos",
                       "--init-from", str(source), "--set", f"filters={filters}",
                       *sum((["--set", f"{k}={json.dumps(v)}"] for k, v in TINY_GAN.items()
                             if k != "filters"), [])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


# --- Data ---------------------------------------------------------------------------------------


def test_held_out_photos_include_baboon_and_are_never_trained_on():
    train_names, test_names = sr_data.photo_names("train"), sr_data.photo_names("test")
    assert "opencv/baboon.jpg" in test_names and not set(train_names) & set(test_names)
    assert len(train_names) >= 20


def test_photo_pairs_are_bicubic_downscales_in_range():
    lr, hr = next(iter(sr_data.photo_pairs("train", crop_size=32, batch_size=3, seed=1)))
    assert lr.shape == (3, 8, 8, 3) and hr.shape == (3, 32, 32, 3)
    assert -1 <= float(tf.reduce_min(lr)) and float(tf.reduce_max(hr)) <= 1
    expected = sr_data.to_unit_range(sr_data.downscale((hr + 1) * 127.5))
    np.testing.assert_allclose(lr.numpy(), expected.numpy(), atol=1e-5)
    count = sr_data.num_photo_examples("test", 32)
    assert sum(len(b[0]) for b in sr_data.photo_pairs("test", crop_size=32, batch_size=64)) == count


def test_div2k_loader_wiring():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        batches = list(sr_data.div2k("test", crop_size=16, batch_size=1, seed=0))
    assert len(batches) == 3
    lr, hr = batches[0]
    assert lr.shape == (1, 4, 4, 3) and hr.shape == (1, 16, 16, 3)


# --- Quality ------------------------------------------------------------------------------------


def test_luma_psnr_and_texture_measure():
    from skimage.color import rgb2ycbcr

    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    np.testing.assert_allclose(quality.luma(rgb), rgb2ycbcr(rgb)[..., 0], atol=1e-6)
    y = quality.luma(rgb)
    assert quality.psnr(y, y) == float("inf") and quality.psnr(y, y + 1) == pytest.approx(48.13, abs=0.01)
    assert quality.hf_energy_ratio(y, y) == pytest.approx(1.0)
    blurred = quality.high_band(y) * 0 + (y - quality.high_band(y))  # the band removed
    assert quality.hf_energy_ratio(y, blurred) < 0.05


def test_evaluate_command_scores_model_and_bicubic(srresnet_run, capsys):
    from training import evaluate

    assert evaluate.main([str(srresnet_run)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record["protocol"]["held_out_photos"]) == set(sr_data.HELD_OUT)
    for key in ("psnr_y", "ssim_y", "hf_energy_ratio"):
        assert np.isfinite(record["metrics"][key]) and np.isfinite(record["metrics"][f"bicubic_{key}"])
    assert record["metrics"]["bicubic_psnr_y"] > 20  # real photos, bicubic is a fair baseline


# --- Export and serving -------------------------------------------------------------------------


LIMIT = 64 * 64


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """BASE with sr (limit 64x64 input pixels), pix2pix and cyclegan, and a server over it."""
    from export.serve import ModelServer

    base = tmp_path_factory.mktemp("models")
    sr = compiled("srgan")
    export_model(sr, str(base), "sr", 1, archive=super_resolution_archive(sr, LIMIT))
    export_model(zoo.build_model("pix2pix", image_shape=(32, 32, 3), input_channels=1, generator_width=4,
                                 discriminator_width=4, test_time_dropout=False), str(base), "p2p", 1)
    export_model(zoo.build_model("cyclegan", image_shape=(32, 32, 1), generator_width=4,
                                 residual_blocks=1, discriminator_width=4), str(base), "cycle", 1)
    server = ModelServer(base, "127.0.0.1", 0, 0, poll_seconds=0.5).start()
    client = Client(server)
    yield base, sr, client
    client.channel.close()
    server.stop()


def jpeg(height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return tf.io.encode_jpeg(pixels).numpy()


def test_export_holds_only_the_generator_and_matches_it(exports):
    from tests.test_export import stored_values

    base, sr, _ = exports
    loaded = tf.saved_model.load(str(base / "sr" / "1"))
    assert set(loaded.signatures) == {"serving_default", "upscale", "upscale_bytes"}
    assert stored_values(str(base / "sr" / "1")) == sr.generator.count_params()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 13, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.signatures["upscale"](images=tf.constant(x))["images"].numpy(),
                               np.asarray(sr.upscale(x)), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="positive"):
        loaded.signatures["upscale"](images=tf.zeros((1, 0, 4, 3)))


def test_rest_and_grpc_upscale_any_size_and_refuse_over_the_limit(exports):
    _, sr, client = exports
    x = np.random.default_rng(1).uniform(-1, 1, (1, 13, 9, 3)).astype(np.float32)
    status, answer = client.rest("sr", {"signature_name": "upscale", "instances": x.tolist()})
    assert status == 200 and np.asarray(answer["predictions"]).shape == (1, 52, 36, 3)
    assert client.grpc("sr", "upscale", images=x)["images"].shape == (1, 52, 36, 3)
    data = jpeg(49, 37)  # odd sizes
    status, answer = client.rest("sr", {"signature_name": "upscale_bytes", "instances": [{"b64": base64.b64encode(data).decode()}]})
    assert status == 200, answer
    image = Image.open(io.BytesIO(base64.b64decode(answer["predictions"][0]["b64"])))
    assert image.size == (4 * 37, 4 * 49) and image.mode == "RGB"
    grpc_png = client.grpc("sr", "upscale_bytes", image_bytes=np.array([data], object))["image_png_bytes"][0]
    assert Image.open(io.BytesIO(grpc_png)).size == (148, 196)
    big = np.zeros((1, 65, 64, 3), np.float32)
    limit = f"at most {LIMIT} pixels"
    status, answer = client.rest("sr", {"signature_name": "upscale", "inputs": big.tolist()})
    assert_clear_rest_error(answer, status, limit, "[65 64]")
    assert_clear_grpc_error(client.grpc_error("sr", "upscale_bytes", image_bytes=np.array([jpeg(65, 64)], object)),
                            limit, "upscale_bytes")
    assert_clear_grpc_error(client.grpc_error("sr", "upscale_bytes", image_bytes=np.array([b"text"], object)),
                            "must be PNG or JPEG")
    assert client.grpc("sr", "upscale", images=x)["images"].shape == (1, 52, 36, 3)  # still serving


@pytest.mark.parametrize("model,signature,mode", [("p2p", "translate_bytes", "RGB"),
                                                  ("cycle", "a_to_b_bytes", "L"),
                                                  ("sr", "upscale_bytes", "RGB")])
def test_a_259x194_colour_jpeg_comes_back_at_its_size_over_rest(exports, model, signature, mode):
    _, _, client = exports
    # the tiny SR export's limit is 64x64 input pixels: there, odd sides under it
    height, width = (49, 63) if model == "sr" else (194, 259)
    data = jpeg(height, width)
    status, answer = client.rest(model, {"signature_name": signature,
                                         "instances": [{"b64": base64.b64encode(data).decode()}]})
    assert status == 200, answer
    image = Image.open(io.BytesIO(base64.b64decode(answer["predictions"][0]["b64"])))
    scale = 4 if model == "sr" else 1
    expected = (scale * width, scale * height)
    assert image.size == expected and image.mode == mode


def test_padding_reflects_and_crops_back_exactly():
    from export.translation import pad_to_multiple, run_padded

    x = np.arange(2 * 3 * 5 * 1, dtype=np.float32).reshape(2, 3, 5, 1)
    padded = pad_to_multiple(tf.constant(x), 8).numpy()
    assert padded.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(padded[:, :3, :5], x)
    np.testing.assert_array_equal(padded[:, 3:6, :5], x[:, ::-1])  # mirrored, edge repeated
    assert run_padded(lambda images, training: images * 2, tf.constant(x), 8).shape == (2, 3, 5, 1)


def test_translate_command_upscales_files(exports, tmp_path):
    from export import translate

    base = exports[0]
    (tmp_path / "photo.jpg").write_bytes(jpeg(21, 30))
    assert translate.main([str(base / "sr"), str(tmp_path / "photo.jpg"), "--out", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "photo.png").size == (120, 84)
