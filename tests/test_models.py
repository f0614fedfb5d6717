"""The contract every registered model keeps (one harness, parametrised over the registry)."""

import keras
import numpy as np
import pytest

import zoo
from tests.model_contract import reload_cleanly

MODELS = zoo.list_models(kind="unconditional")  # image-to-image: tests/test_image_to_image.py


def small_model(name, **overrides):
    """The registered model at its defaults, compiled with its paper's optimizers."""
    spec = zoo.get_spec(name)
    model = zoo.build_model(name, seed=3, **overrides)
    g_optimizer, d_optimizer = spec.make_optimizers()
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    return model


def real_batch(model, count=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (count,) + model.image_shape).astype("float32")


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name):
    model = zoo.build_model(name, seed=3)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.generator.count_params() == model.generator.count_params()
    assert clone.discriminator.count_params() == model.discriminator.count_params()


@pytest.mark.parametrize("name", MODELS)
def test_one_train_step_gives_finite_losses(name):
    model = small_model(name)
    logs = model.train_on_batch(real_batch(model), return_dict=True)
    assert set(logs) >= {"d_loss", "g_loss"}
    assert all(np.isfinite(value) for value in logs.values())
    assert int(model.d_optimizer.iterations) == model.n_critic
    assert int(model.g_optimizer.iterations) == 1


@pytest.mark.parametrize("name", MODELS)
def test_generator_outputs_images_in_range(name):
    model = zoo.build_model(name, seed=3)
    images = np.asarray(model.sample(4))
    assert images.shape == (4,) + model.image_shape
    assert images.min() >= -1.0 and images.max() <= 1.0


@pytest.mark.parametrize("name", MODELS)
def test_save_reload_gives_same_outputs_and_fit_continues(name, tmp_path):
    model = small_model(name)
    data = real_batch(model, 32)
    model.fit(data, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = reload_cleanly(path)
    z = np.random.default_rng(1).normal(size=(5, model.latent_dim)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(z)), np.asarray(reloaded(z)))
    # optimizer state restored: step counters and slot variables, then training goes on
    assert int(reloaded.g_optimizer.iterations) == int(model.g_optimizer.iterations) == 2
    assert int(reloaded.d_optimizer.iterations) == 2 * model.n_critic
    for saved, restored in zip(model.g_optimizer.variables, reloaded.g_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    history = reloaded.fit(data, batch_size=16, epochs=1, verbose=0)
    assert int(reloaded.g_optimizer.iterations) == 4
    assert np.isfinite(history.history["d_loss"][-1])


def test_n_critic_counts_optimizer_iterations():
    model = small_model("dcgan", n_critic=5)
    data = real_batch(model, 3 * 20)
    model.fit(data, batch_size=20, epochs=1, verbose=0)  # 3 steps of 5 critic slices of 4
    assert int(model.d_optimizer.iterations) == 15
    assert int(model.g_optimizer.iterations) == 3


@pytest.mark.parametrize("count", [2, 4])
def test_batch_smaller_than_n_critic_keeps_weights_finite(count):
    """An epoch's last batch may hold fewer images than n_critic slices: no slice may be empty
    (batch norm over no images gives NaN statistics, which used to reach every weight)."""
    model = small_model("dcgan", n_critic=5)
    data = real_batch(model, 20 + count)
    history = model.fit(data, batch_size=20, epochs=1, verbose=0)  # batches of 20, then count
    assert int(model.d_optimizer.iterations) == 10
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert all(np.isfinite(weight).all() for weight in model.get_weights())


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="latent_dims"):
        zoo.build_model("dcgan", latent_dims=3)


def test_unknown_model_lists_the_registry():
    with pytest.raises(ValueError, match="dcgan"):
        zoo.get_spec("stylegan9")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    "stabiliser",
    [{"r1_gamma": 10.0}, {"instance_noise": 0.1}, {"spectral_norm": True}, {"loss": "hinge"}],
    ids=["r1", "instance_noise", "spectral_norm", "hinge"],
)
def test_every_variant_takes_every_stabiliser(name, stabiliser):
    if "spectral_norm" in stabiliser and "discriminator_normalization" in zoo.get_spec(name).defaults:
        stabiliser = {**stabiliser, "discriminator_normalization": None}  # SN refuses batch norm
    model = small_model(name, **stabiliser)
    logs = model.train_on_batch(real_batch(model, 8), return_dict=True)
    assert all(np.isfinite(value) for value in logs.values())
    if "r1_gamma" in stabiliser:
        assert logs["d_penalty"] > 0


def test_label_smoothing_only_with_cross_entropy():
    model = small_model("dcgan", label_smoothing=0.1)
    assert np.isfinite(model.train_on_batch(real_batch(model, 8), return_dict=True)["d_loss"])
    with pytest.raises(ValueError, match="cross-entropy"):
        zoo.build_model("wgan", label_smoothing=0.1)


def test_weight_clipping_holds_after_every_critic_step():
    model = small_model("wgan")
    # start far outside the clip range so a missed clip cannot pass unnoticed
    for variable in model.discriminator.trainable_variables:
        variable.assign(variable * 0 + 0.5)
    for step in range(3):
        model.train_on_batch(real_batch(model, 8, seed=step))
        for variable in model.discriminator.trainable_variables:
            assert np.abs(np.asarray(variable)).max() <= 0.01 + 1e-7, variable.path


def test_wgan_gp_penalty_is_reported_and_critic_has_no_batch_norm():
    model = small_model("wgan_gp")
    layers = [type(layer).__name__ for layer in model.discriminator.layers]
    assert "BatchNormalization" not in layers
    logs = model.train_on_batch(real_batch(model, 8), return_dict=True)
    assert logs["d_penalty"] > 0 and np.isfinite(logs["d_penalty"])


@pytest.mark.parametrize("name,loss,n_critic", [
    ("wgan", "wasserstein", 5), ("wgan_gp", "wasserstein", 5), ("lsgan", "least_squares", 1),
])
def test_paper_defaults(name, loss, n_critic):
    model = zoo.build_model(name)
    assert (model.loss_name, model.n_critic) == (loss, n_critic)


def test_trains_under_a_distribution_strategy():
    import tensorflow as tf

    with tf.distribute.MirroredStrategy().scope():
        model = small_model("wgan_gp")
    history = model.fit(real_batch(model, 20), batch_size=10, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][-1])
    assert model.d_optimizer.iterations.numpy() == 10 and model.g_optimizer.iterations.numpy() == 2


@pytest.mark.parametrize("name", zoo.list_models())
def test_make_optimizers_leaves_the_registered_defaults_alone(name):
    import json

    spec = zoo.get_spec(name)
    before = json.dumps(spec.training, sort_keys=True)
    spec.make_optimizers()
    assert json.dumps(spec.training, sort_keys=True) == before


def test_spectral_norm_refuses_a_batch_normed_discriminator():
    with pytest.raises(ValueError, match="discriminator_normalization=null"):
        zoo.build_model("dcgan", spectral_norm=True)
    layers = zoo.build_model("dcgan", spectral_norm=True, discriminator_normalization=None).discriminator.layers
    assert not [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len([layer for layer in layers if isinstance(layer, zoo.layers.SpectralNorm)]) == 3


@pytest.mark.parametrize("make_layer,input_shape", [
    (lambda: keras.layers.Dense(5, use_bias=False), (3, 7)),
    (lambda: keras.layers.Conv2D(4, 3, use_bias=False), (2, 6, 6, 3)),
], ids=["dense", "conv"])
def test_spectral_norm_is_miyato_2018_against_an_svd(make_layer, input_shape):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=input_shape).astype("float32")
    layer = zoo.layers.SpectralNorm(make_layer())
    layer(x)
    kernel = np.asarray(layer.layer.kernel).astype("float64")
    matrix = kernel.reshape(-1, kernel.shape[-1])
    sigma = np.linalg.svd(matrix, compute_uv=False)[0]
    u = np.asarray(layer.u).copy()
    layer(x, training=False)
    np.testing.assert_array_equal(np.asarray(layer.u), u)  # power iteration only in training
    for _ in range(50):
        layer(x, training=True)
    np.testing.assert_array_equal(np.asarray(layer.layer.kernel), kernel.astype("float32"))  # raw W kept
    assert float(layer.sigma()) == pytest.approx(sigma, rel=1e-5)
    reference = make_layer()
    reference.build(input_shape)
    reference.kernel.assign((kernel / sigma).astype("float32"))
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(reference(x)), rtol=1e-4, atol=1e-6)

    # The gradient flows through sigma: d/dW sum(sin(f(x; W / sigma(W)))) by central differences.
    def objective(weights):
        normalized = weights / np.linalg.svd(weights.reshape(-1, weights.shape[-1]), compute_uv=False)[0]
        reference.kernel.assign(normalized.astype("float32"))
        return float(np.sum(np.sin(np.asarray(reference(x), "float64"))))

    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.sin(layer(x)))
    gradient = np.asarray(tape.gradient(total, layer.layer.kernel))
    numeric = np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        step = np.zeros_like(kernel)
        step[index] = 1e-3
        numeric[index] = (objective(kernel + step) - objective(kernel - step)) / 2e-3
    np.testing.assert_allclose(gradient, numeric, atol=2e-3 * np.abs(numeric).max())


def test_wgan_rmsprop_rho_is_pinned():
    g_optimizer, d_optimizer = zoo.get_spec("wgan").make_optimizers()
    assert g_optimizer.rho == d_optimizer.rho == 0.99
