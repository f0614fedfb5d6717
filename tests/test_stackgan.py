"""StackGAN (Zhang 2017): conditioning augmentation, Stage-II over a frozen Stage-I, its signature."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from export.saved_model import export_model, latent_from_seeds
from tests.test_text_to_image import SMALL_OF, batch, small_model
from training import captions
from zoo.models.stackgan import kl_divergence


def test_kl_term_is_zero_at_the_prior_and_positive_away_from_it():
    zeros = tf.zeros((4, 8))
    assert float(kl_divergence(zeros, zeros)) == pytest.approx(0.0, abs=1e-7)
    # mu = 1, sigma = 1: KL = mu^2 / 2 = 0.5 per dimension
    assert float(kl_divergence(tf.ones((4, 8)), zeros)) == pytest.approx(0.5, rel=1e-6)
    assert float(kl_divergence(zeros, tf.fill((4, 8), 0.5))) > 0


def test_stage2_starts_from_a_stage1_run_keeps_it_frozen_and_draws_4x(tmp_path):
    stage1 = small_model("stackgan_stage1")
    stage1.train_on_batch(batch(), return_dict=True)
    run_dir = tmp_path / "stage1"
    run_dir.mkdir()
    stage1.save(str(run_dir / "model.keras"))

    stage2 = small_model("stackgan")
    stage2.initialise_from(str(run_dir))
    for theirs, ours in ((stage1.generator, stage2.stage1_generator),
                         (stage1.conditioning, stage2.stage1_conditioning)):
        for a, b in zip(theirs.get_weights(), ours.get_weights()):
            np.testing.assert_array_equal(a, b)
    frozen = [w.copy() for w in stage2.stage1_generator.get_weights()]
    trained = [w.copy() for w in stage2.generator.get_weights()]
    logs = stage2.train_on_batch(batch(), return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()) and logs["kl"] >= 0
    for before, after in zip(frozen, stage2.stage1_generator.get_weights()):
        np.testing.assert_array_equal(before, after)  # Stage-I does not move
    assert any(not np.array_equal(b, a) for b, a in zip(trained, stage2.generator.get_weights()))

    text = tf.constant(["a red circle on the left", "a big blue box at the top"])
    outputs = stage2.generate_outputs(text)
    assert tuple(outputs["images"].shape) == (2, 64, 64, 3)
    assert tuple(outputs["stage1_images"].shape) == (2, 16, 16, 3)
    # the Stage-I draw inside Stage-II is the Stage-I run's own draw for the same noise
    noise = tf.random.stateless_normal((2, stage2.latent_dim), (5, 6))
    z, eps1, _ = stage2.split_noise(noise)
    np.testing.assert_allclose(stage2.generate_outputs(text, noise)["stage1_images"],
                               stage1.generate(text, tf.concat([z, eps1], axis=1)), atol=1e-5)


def test_init_from_refuses_a_run_of_another_model(tmp_path):
    other = zoo.build_model("gan_cls", **SMALL_OF["gan_cls"])
    run_dir = tmp_path / "gan_cls"
    run_dir.mkdir()
    other.save(str(run_dir / "model.keras"))
    stage2 = zoo.build_model("stackgan", **SMALL_OF["stackgan"])
    with pytest.raises(ValueError, match="needs a stackgan_stage1 run"):
        stage2.initialise_from(str(run_dir))
    with pytest.raises(ValueError, match="no finished run"):
        stage2.initialise_from(str(tmp_path / "missing"))


def test_signature_returns_both_stages(tmp_path):
    model = zoo.build_model("stackgan", **SMALL_OF["stackgan"])
    loaded = tf.saved_model.load(export_model(model, str(tmp_path), "stackgan", 1))
    out = loaded.signatures["generate_from_text"](text=tf.constant(["a small green triangle"]),
                                                  seed=tf.constant([7], tf.int64))
    assert out["images"].shape == (1, 64, 64, 3) and out["stage1_images"].shape == (1, 16, 16, 3)
    assert out["stage1_images_png_bytes"].numpy()[0].startswith(b"\x89PNG")
    noise = latent_from_seeds(tf.constant([7], tf.int64), model.latent_dim, "normal")
    expected = model.generate_outputs(tf.constant(["a small green triangle"]), noise)
    np.testing.assert_allclose(out["images"], expected["images"], atol=1e-4)
    np.testing.assert_allclose(out["stage1_images"], expected["stage1_images"], atol=1e-4)


def test_high_frequency_energy_tells_sharp_images_from_upsampled_quarter_resolution_ones():
    from training.text_to_image_quality import at_resolution, high_frequency_energy

    image, _, _ = captions.scene("test", 3)
    sharp = np.asarray(image, np.float32)[None] / 127.5 - 1.0
    quarter = tf.image.resize(sharp, (16, 16), method="area").numpy()
    upsampled = at_resolution(quarter, (64, 64))
    assert upsampled.shape == sharp.shape
    np.testing.assert_array_equal(at_resolution(sharp, (64, 64)), sharp)
    assert upsampled.min() >= -1 and upsampled.max() <= 1
    assert high_frequency_energy(sharp) > 2 * high_frequency_energy(upsampled)
    flat = np.zeros((2, 64, 64, 3), np.float32)
    assert high_frequency_energy(flat) == 0.0


def test_init_from_is_refused_clearly_for_models_that_train_from_scratch(tmp_path):
    from training.train import ConfigError, initialise_from

    with pytest.raises(ConfigError, match="gan_cls trains from scratch"):
        initialise_from(zoo.build_model("gan_cls", **SMALL_OF["gan_cls"]), str(tmp_path))


def test_refine_upsampled_stage2_draws_a_residual_over_the_upsampled_stage1_image(tmp_path):
    model = zoo.build_model("stackgan", refine_upsampled=True, **SMALL_OF["stackgan"])
    residual = model.generator.get_layer("residual")
    residual.set_weights([np.zeros_like(w) for w in residual.get_weights()])
    text = tf.constant(["a red circle on the left", "a big blue box at the top"])
    outputs = model.generate_outputs(text, tf.random.stateless_normal((2, model.latent_dim), (1, 2)))
    upsampled = tf.image.resize(outputs["stage1_images"], (64, 64), method="bilinear")
    # with no residual, Stage-II is exactly the bilinearly up-sampled Stage-I image
    np.testing.assert_allclose(outputs["images"], upsampled, atol=1e-5)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert reloaded.generator.get_layer("residual") is not None
    noise = tf.random.stateless_normal((2, model.latent_dim), (3, 4))
    np.testing.assert_allclose(reloaded.generate(text, noise), model.generate(text, noise), atol=1e-5)
