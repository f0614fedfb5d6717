"""pix2pix and CycleGAN: the model contract, their paper-specific parts, real data and export."""

import functools
import importlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from export.saved_model import export_model
from export.translation import image_to_image_archive
from tests.model_contract import reload_cleanly
from training import image_pairs
from zoo.models.image_to_image import ReflectionPadding2D, normalization, patchgan_discriminator

MODELS = ["pix2pix", "cyclegan"]

# Small widths so the whole file runs in well under two minutes on 2 CPU cores.
SMALL = {
    "pix2pix": dict(image_shape=(32, 32, 3), input_channels=1, generator_width=8, discriminator_width=8),
    "cyclegan": dict(image_shape=(32, 32, 1), generator_width=8, residual_blocks=2, discriminator_width=8,
                     pool_size=3),
}


def variant(name):
    """``zoo.models.<name>``, imported (which registers it) when a test runs, not at collection:
    ``tests/test_models.py`` parametrises the unconditional-GAN contract over the whole registry
    as it stands at collection, and these two models do not take noise ``z``."""
    return importlib.import_module(f"zoo.models.{name}")


def build(name, **hyperparameters):
    variant(name)
    return zoo.build_model(name, **hyperparameters)


def spec(name):
    variant(name)
    return zoo.get_spec(name)


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def small_model(name, **overrides):
    """The registered model at small widths, compiled with its paper's optimizers."""
    model = build(name, seed=3, **{**SMALL[name], **overrides})
    registered = spec(name)
    model.compile(*registered.make_optimizers())
    return model


def data_batch(name, count=2, seed=0):
    """``(inputs, targets)`` for pix2pix, ``(images_a, images_b)`` for CycleGAN."""
    rng = np.random.default_rng(seed)
    shape = SMALL[name]["image_shape"]
    first = shape[:2] + (SMALL[name].get("input_channels", shape[-1]),)
    return tuple(rng.uniform(-1, 1, (count,) + s).astype("float32") for s in (first, shape))


def generator_outputs(model, inputs):
    return {name: np.asarray(generator(inputs, training=False))
            for name, generator in model.translators.items()}


# --- Shared layers ------------------------------------------------------------------------------


def test_group_normalization_with_groups_minus_one_is_instance_normalization():
    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 5, 7, 4)).astype("float32")
    layer = normalization("instance", affine=False)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(np.asarray(layer(x)), (x - mean) / np.sqrt(var + 1e-5), atol=1e-4)


def test_reflection_padding_matches_numpy_reflect():
    x = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    padded = np.asarray(ReflectionPadding2D(2)(x))
    np.testing.assert_array_equal(padded, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    assert ReflectionPadding2D(3).compute_output_shape((None, None, 8, 1)) == (None, None, 14, 1)


def test_paper_sized_networks_have_the_papers_parameter_counts():
    """Golden counts printed by the authors' PyTorch code: unet_256 54.414 M, 70x70 PatchGAN
    2.769 M (pix2pix, 6 input channels, batch norm); resnet_9blocks 11.378 M and PatchGAN
    2.765 M (CycleGAN, instance norm)."""
    pix2pix, cyclegan = variant("pix2pix"), variant("cyclegan")
    assert pix2pix.unet_depth((256, 256, 3)) == 8 and pix2pix.unet_depth((64, 128, 3)) == 6
    assert trainable_count(pix2pix.unet_generator(3, 3, 8, normalization_kind="batch")) == 54_414_531
    assert trainable_count(
        patchgan_discriminator(3, condition_channels=3, normalization_kind="batch")) == 2_768_705
    assert trainable_count(cyclegan.resnet_generator(3, 64, 9)) == 11_378_179
    cyclegan_d = patchgan_discriminator(3, normalization_kind="instance", affine=False)
    assert trainable_count(cyclegan_d) == 2_764_737
    assert cyclegan_d(np.zeros((1, 256, 256, 3), "float32")).shape == (1, 30, 30, 1)  # 70x70 patches


def test_pix2pix_dropout_is_in_the_first_three_decoder_blocks_and_on_at_test_time():
    model = build("pix2pix", **SMALL["pix2pix"])
    dropouts = [layer for layer in model.generator.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.rate for layer in dropouts] == [0.5] * 3
    x = data_batch("pix2pix")[0]
    assert not np.array_equal(np.asarray(model(x)), np.asarray(model(x)))  # noise at inference
    deterministic = build("pix2pix", test_time_dropout=False, **SMALL["pix2pix"])
    np.testing.assert_array_equal(np.asarray(deterministic(x)), np.asarray(deterministic(x)))


# --- The model contract -------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name):
    model = build(name, seed=3, **SMALL[name])
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert trainable_count(clone) == trainable_count(model)
    json.dumps(config)  # plain JSON, as .keras files need


@functools.lru_cache(maxsize=None)
def stepped(name):
    """``(model, logs)``: a small compiled model after one ``train_on_batch`` (built once)."""
    model = small_model(name)
    return model, model.train_on_batch(*data_batch(name), return_dict=True)


@pytest.mark.parametrize("name", MODELS)
def test_one_train_step_gives_finite_losses(name):
    model, logs = stepped(name)
    assert set(logs) >= {"d_loss", "g_loss"}
    assert all(np.isfinite(value) for value in logs.values()), logs
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 1
    evaluation = model.evaluate(*data_batch(name, seed=1), verbose=0, return_dict=True)
    assert set(evaluation) == set(logs) and all(np.isfinite(value) for value in evaluation.values())


@pytest.mark.parametrize("name", MODELS)
def test_save_reload_gives_same_outputs_and_fit_continues(name, tmp_path):
    model = small_model(name)
    first, second = data_batch(name, 4)
    model.fit(first, second, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = reload_cleanly(path)
    assert type(reloaded) is type(model)
    # pix2pix's test-time dropout state is saved too, so even its noisy outputs agree
    expected, restored = generator_outputs(model, first), generator_outputs(reloaded, first)
    for direction in expected:
        np.testing.assert_array_equal(expected[direction], restored[direction])
    assert int(reloaded.d_optimizer.iterations) == int(model.d_optimizer.iterations) == 2
    for saved, loaded in zip(model.g_optimizer.variables, reloaded.g_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))
    if name == "cyclegan":  # the history pools come back with their images
        assert int(reloaded.pool_a.count) == int(model.pool_a.count) == 3
        np.testing.assert_array_equal(np.asarray(reloaded.pool_b.images), np.asarray(model.pool_b.images))
        assert isinstance(reloaded.g_optimizer._learning_rate, variant("cyclegan").LinearDecayAfterConstant)
    history = reloaded.fit(first, second, batch_size=2, epochs=1, verbose=0)
    assert int(reloaded.d_optimizer.iterations) == 4
    assert np.isfinite(history.history["g_loss"][-1])


def test_registry_training_defaults_are_the_papers():
    pix2pix, cyclegan = spec("pix2pix"), spec("cyclegan")
    for registered in (pix2pix, cyclegan):
        assert registered.training["batch_size"] == 1
        json.dumps(registered.training)  # still plain configs after every test's make_optimizers
    assert pix2pix.defaults["l1_weight"] == 100.0 and pix2pix.defaults["loss"] == "non_saturating"
    assert cyclegan.defaults["cycle_weight"] == 10.0 and cyclegan.defaults["identity_weight"] == 0.5
    assert cyclegan.defaults["loss"] == "least_squares" and cyclegan.defaults["residual_blocks"] == 9
    g_optimizer, _ = cyclegan.make_optimizers()
    assert g_optimizer.beta_1 == 0.5
    schedule = g_optimizer._learning_rate
    assert (schedule.constant_steps, schedule.decay_steps) == (100 * 1334, 100 * 1334)


# --- pix2pix specifics --------------------------------------------------------------------------


def test_pix2pix_objective_halves_d_and_weights_l1_by_100():
    model, logs = stepped("pix2pix")
    np.testing.assert_allclose(logs["g_loss"], logs["g_adversarial"] + 100.0 * logs["g_l1"], rtol=1e-5)
    assert model.discriminator_loss_weight == 0.5
    fixed = [np.full((1, 30, 30, 1), 0.3, "float32"), np.full((1, 30, 30, 1), -0.2, "float32")]
    d_loss = model.discriminator_loss_weight * model.adversarial_loss.discriminator(*fixed)
    expected = 0.5 * (np.log1p(np.exp(-0.3)) + np.log1p(np.exp(-0.2)))  # halved cross-entropy
    np.testing.assert_allclose(float(d_loss), expected, rtol=1e-5)


def test_pix2pix_l1_only_baseline_never_trains_d():
    model = small_model("pix2pix", adversarial_weight=0.0)
    weights = [np.asarray(v) for v in model.discriminator.trainable_variables]
    logs = model.train_on_batch(*data_batch("pix2pix"), return_dict=True)
    assert logs["g_adversarial"] == 0.0 and logs["d_loss"] == 0.0
    np.testing.assert_allclose(logs["g_loss"], 100.0 * logs["g_l1"], rtol=1e-6)
    assert int(model.d_optimizer.iterations) == 0 and int(model.g_optimizer.iterations) == 1
    for before, variable in zip(weights, model.discriminator.trainable_variables):
        np.testing.assert_array_equal(before, np.asarray(variable))


def test_fully_convolutional_generators_refuse_sizes_off_their_stride():
    pix2pix = build("pix2pix", **SMALL["pix2pix"])
    assert pix2pix.generator_stride == 32  # 32x32 training size: 5 stride-2 steps
    assert pix2pix.translate(np.zeros((1, 32, 64, 1), "float32")).shape == (1, 32, 64, 3)
    with pytest.raises(ValueError, match="multiples of 32"):
        pix2pix.translate(np.zeros((1, 32, 48, 1), "float32"))
    cyclegan = build("cyclegan", **SMALL["cyclegan"])
    assert cyclegan.generator_stride == 4
    assert cyclegan.translate(np.zeros((1, 12, 20, 1), "float32"), "b_to_a").shape == (1, 12, 20, 1)
    with pytest.raises(ValueError, match="multiples of 4"):
        cyclegan.translate(np.zeros((1, 12, 18, 1), "float32"))
    with pytest.raises(ValueError, match="multiples of 4"):
        build("cyclegan", **{**SMALL["cyclegan"], "image_shape": (30, 30, 1)})


# --- CycleGAN specifics -------------------------------------------------------------------------


def test_cyclegan_objective_weights():
    model, logs = stepped("cyclegan")
    expected = (logs["g_ab_adversarial"] + logs["g_ba_adversarial"] + 10.0 * logs["cycle_loss"]
                + 5.0 * logs["identity_loss"])
    np.testing.assert_allclose(logs["g_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["d_loss"], logs["d_a_loss"] + logs["d_b_loss"], rtol=1e-5)
    # G's least-squares term is E[(D(G(x)) - 1)^2], without Mao's 1/2 (Zhu 2017, eq. 2)
    logits = np.full((1, 2, 2, 1), 0.25, "float32")
    scaled = model.generator_loss_scale * model.adversarial_loss.generator(logits)
    np.testing.assert_allclose(float(scaled), (0.25 - 1.0) ** 2, rtol=1e-6)


def simulate_pool(pool, inputs, outputs):
    """Check ``outputs`` against CycleGAN's one-by-one pool rule; return the number of swaps."""
    swaps = 0
    for new, out in zip(inputs, outputs):
        if len(pool) < 4:
            assert out == new
            pool.append(new)
        elif out != new:
            assert out in pool, (out, pool)
            pool[pool.index(out)] = new
            swaps += 1
    return swaps


def test_history_pool_returns_stored_images_half_the_time():
    pool = variant("cyclegan").ImageHistoryPool(pool_size=4, image_shape=(1, 1, 1), seed=7)
    step = tf.function(pool.__call__)  # as inside a compiled train_step
    ids = np.arange(1, 405, dtype="float32").reshape(-1, 1, 1, 1)
    mirror = []
    first = np.asarray(step(ids[:6])).ravel().tolist()  # fills, then starts swapping
    swaps = simulate_pool(mirror, ids[:6].ravel().tolist(), first)
    assert first[:4] == [1.0, 2.0, 3.0, 4.0] and int(pool.count) == 4
    later = np.asarray(step(ids[6:])).ravel().tolist()
    swaps += simulate_pool(mirror, ids[6:].ravel().tolist(), later)
    assert 0.4 < swaps / 400 < 0.6, swaps
    assert sorted(np.asarray(pool.images).ravel().tolist()) == sorted(mirror)


def test_history_pool_off_passes_fakes_through():
    pool = variant("cyclegan").ImageHistoryPool(pool_size=0, image_shape=(2, 2, 1))
    fakes = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(pool(fakes)), fakes)


def test_learning_rate_is_constant_then_linear_to_zero():
    cyclegan = variant("cyclegan")
    LinearDecayAfterConstant = cyclegan.LinearDecayAfterConstant
    schedule = LinearDecayAfterConstant(2e-4, constant_steps=100, decay_steps=50)
    steps = [0, 99, 100, 125, 149, 150, 1000]
    expected = [2e-4, 2e-4, 2e-4, 1e-4, 2e-4 / 50, 0.0, 0.0]
    np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-5, atol=1e-12)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, LinearDecayAfterConstant) and restored.get_config() == schedule.get_config()
    paper = cyclegan.paper_learning_rate(steps_per_epoch=10)
    assert (paper.constant_steps, paper.decay_steps) == (1000, 1000)
    with pytest.raises(ValueError, match="decay_steps"):
        LinearDecayAfterConstant(1e-3, 10, 0)


# --- Real data ----------------------------------------------------------------------------------


def test_photo_split_is_fixed_and_disjoint():
    train, test = image_pairs.photo_names("train"), image_pairs.photo_names("test")
    assert set(test) == set(image_pairs.HELD_OUT) and not set(train) & set(test)
    assert len(train) == 23
    tiles = [tile for tile, _ in image_pairs.edges_to_photo("test", crop_size=64, shuffle=False).unbatch()]
    assert len(tiles) == 80  # every 64x64 tile of the 4 held-out photos at short side 256


@pytest.mark.parametrize("task", sorted(image_pairs.TASKS))
def test_photo_pairs_are_aligned_crops_in_range(task):
    dataset = image_pairs.photo_pairs(task, "train", crop_size=32, batch_size=4, seed=0)
    inputs, photos = next(iter(dataset))
    assert inputs.shape == (4, 32, 32, 1) and photos.shape == (4, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(photos)) and float(tf.reduce_max(photos)) <= 1.0
    if task == "edges_to_photo":
        assert set(np.unique(inputs.numpy())) <= {-1.0, 1.0}  # black edges on white
    else:  # crop and flip hit input and photo alike: the input is the photo's luminance
        luminance = (photos.numpy() + 1) * 127.5 @ np.array([0.2125, 0.7154, 0.0721])
        np.testing.assert_allclose((inputs.numpy()[..., 0] + 1) * 127.5, luminance, atol=0.6)


def test_pix2pix_trains_on_real_edges_to_photo_crops():
    model = small_model("pix2pix")
    dataset = image_pairs.edges_to_photo("train", crop_size=32, batch_size=1, seed=0)
    history = model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert int(model.g_optimizer.iterations) == 3


def test_cyclegan_trains_on_sneakers_and_boots(fashion_mnist_data_dir):
    dataset = image_pairs.sneakers_and_boots("test", batch_size=2, data_dir=fashion_mnist_data_dir, seed=0)
    sneakers, boots = next(iter(dataset))
    assert sneakers.shape == boots.shape == (2, 32, 32, 1)
    assert float(tf.reduce_min(sneakers)) == -1.0 and float(tf.reduce_max(boots)) <= 1.0
    np.testing.assert_array_equal(sneakers.numpy()[:, :2], -1.0)  # the 2-pixel background padding
    model = small_model("cyclegan")
    history = model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert all(np.isfinite(values[-1]) for values in history.history.values())


def test_cycle_gan_tfds_loader_wiring():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        dataset = image_pairs.cycle_gan_tfds("horse2zebra", batch_size=1, image_size=32, load_size=36, seed=0)
        batches = list(dataset)
    assert len(batches) == 3
    images_a, images_b = batches[0]
    assert images_a.shape == images_b.shape == (1, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(images_a)) and float(tf.reduce_max(images_b)) <= 1.0


# --- Export -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Both models exported: (loaded SavedModel, model, first in-process outputs, inputs, directory)."""
    base = tmp_path_factory.mktemp("saved_models")
    inputs = {"pix2pix": data_batch("pix2pix")[0], "cyclegan": data_batch("cyclegan")[0]}
    inputs = {name: np.concatenate([x, x[:, ::-1]], axis=2) for name, x in inputs.items()}  # 32x64
    result = {}
    for name in MODELS:
        model = build(name, seed=3, **SMALL[name])
        directory = export_model(model, str(base), name, 1, archive=image_to_image_archive(model))
        # pix2pix's dropout state was exported as it is now: the first calls on both sides agree
        expected = generator_outputs(model, inputs[name])
        result[name] = (tf.saved_model.load(directory), model, expected, inputs[name], directory)
    return result


def test_pix2pix_export_matches_in_process_outputs_on_non_square_input(exported):
    loaded, _, expected, inputs, _ = exported["pix2pix"]
    assert set(loaded.signatures) == {"serving_default", "translate_bytes"}
    outputs = loaded.signatures["serving_default"](images=tf.constant(inputs))["images"]
    assert outputs.shape == (2, 32, 64, 3)
    np.testing.assert_allclose(outputs.numpy(), expected["translate"], atol=1e-5)
    png = tf.io.encode_png(tf.cast(tf.round((inputs[0] + 1) * 127.5), tf.uint8))
    encoded = loaded.signatures["translate_bytes"](image_bytes=tf.stack([png]))["image_png_bytes"]
    assert tf.io.decode_png(encoded[0]).shape == (32, 64, 3)


@pytest.mark.parametrize("name", MODELS)
def test_export_stores_each_generator_variable_once(exported, name):
    from tests.test_export import stored_values

    _, model, _, _, directory = exported[name]
    generators = list(model.translators.values())
    dropout_states = sum(int(np.prod(v.shape)) for g in generators for v in g.non_trainable_variables
                         if "seed_generator" in v.path)  # pix2pix's test-time dropout RNG states
    expected = sum(g.count_params() for g in generators) + dropout_states
    assert stored_values(directory) == expected


def test_cyclegan_exports_both_directions_in_one_saved_model(exported):
    loaded, model, expected, inputs, _ = exported["cyclegan"]
    assert set(loaded.signatures) == {"serving_default", "a_to_b", "b_to_a", "a_to_b_bytes", "b_to_a_bytes"}
    for signature, direction in [("a_to_b", "a_to_b"), ("b_to_a", "b_to_a"), ("serving_default", "a_to_b")]:
        outputs = loaded.signatures[signature](images=tf.constant(inputs))["images"].numpy()
        np.testing.assert_allclose(outputs, expected[direction], atol=1e-5)
    pixels = tf.cast(tf.round((inputs[0] + 1) * 127.5), tf.uint8)
    png = tf.io.encode_png(pixels)
    encoded = loaded.signatures["b_to_a_bytes"](image_bytes=tf.stack([png]))["image_png_bytes"]
    decoded = tf.cast(tf.io.decode_png(encoded[0]), tf.float32).numpy()
    in_process = model.generator_ba(tf.cast(pixels, tf.float32)[None] / 127.5 - 1.0)[0]
    np.testing.assert_allclose(decoded, np.clip(np.round((in_process + 1) * 127.5), 0, 255), atol=1)
    jpeg = tf.io.encode_jpeg(tf.image.grayscale_to_rgb(pixels))  # colour JPEG to a grey model
    assert loaded.signatures["a_to_b_bytes"](image_bytes=tf.stack([jpeg]))["image_png_bytes"].shape == (1,)


@pytest.mark.parametrize("name,signature,size,stride", [
    ("pix2pix", "serving_default", (32, 48), 32),
    ("cyclegan", "b_to_a", (30, 64), 4),
])
def test_float_signatures_refuse_sizes_off_the_stride_bytes_pad_and_crop_back(exported, name, signature,
                                                                            size, stride):
    loaded = exported[name][0]
    channels = SMALL[name].get("input_channels", SMALL[name]["image_shape"][-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"multiples of {stride}"):
        loaded.signatures[signature](images=tf.zeros((1,) + size + (channels,)))
    pixels = np.random.default_rng(0).integers(0, 256, size + (channels,), np.uint8)
    bytes_signature = "translate_bytes" if name == "pix2pix" else f"{signature}_bytes"
    encoded = loaded.signatures[bytes_signature](image_bytes=tf.stack([tf.io.encode_png(pixels)]))
    decoded = tf.io.decode_png(encoded["image_png_bytes"][0]).numpy()
    out_channels = SMALL[name]["image_shape"][-1]
    assert decoded.shape == size + (out_channels,)
    if name == "cyclegan":  # deterministic: the crop of the generator's output on the padded image
        from export.translation import pad_to_multiple

        model = exported[name][1]
        x = tf.constant(pixels[None].astype(np.float32) / 127.5 - 1.0)
        full = np.asarray(model.generator_ba(pad_to_multiple(x, stride)))[0, :size[0], :size[1]]
        np.testing.assert_allclose(decoded, np.clip(np.round((full + 1) * 127.5), 0, 255), atol=1)
