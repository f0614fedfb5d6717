"""Golden values for every loss and penalty, computed by hand from fixed logits."""

import math

import numpy as np
import pytest

from zoo import losses

REAL = np.array([[2.0], [-1.0]], dtype="float32")
FAKE = np.array([[0.5], [-3.0]], dtype="float32")


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_minimax_discriminator_loss():
    # -mean(log sigma(r)) - mean(log(1 - sigma(f)))
    expected = -(math.log(sigmoid(2.0)) + math.log(sigmoid(-1.0))) / 2 - (
        math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))
    ) / 2
    assert float(losses.minimax_discriminator_loss(REAL, FAKE)) == pytest.approx(expected, rel=1e-5)


def test_one_sided_label_smoothing_changes_only_real_targets():
    s = 0.1
    real_term = sum(-(1 - s) * math.log(sigmoid(r)) - s * math.log(1 - sigmoid(r)) for r in (2.0, -1.0)) / 2
    fake_term = sum(-math.log(1 - sigmoid(f)) for f in (0.5, -3.0)) / 2
    value = losses.minimax_discriminator_loss(REAL, FAKE, label_smoothing=s)
    assert float(value) == pytest.approx(real_term + fake_term, rel=1e-5)


def test_minimax_generator_loss():
    expected = (math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))) / 2
    assert float(losses.minimax_generator_loss(FAKE)) == pytest.approx(expected, rel=1e-5)


def test_non_saturating_generator_loss():
    expected = -(math.log(sigmoid(0.5)) + math.log(sigmoid(-3.0))) / 2
    assert float(losses.non_saturating_generator_loss(FAKE)) == pytest.approx(expected, rel=1e-5)


def test_least_squares_losses_with_targets():
    # a=0, b=1: 0.5*mean((r-1)^2) + 0.5*mean(f^2) = 0.5*(1+4)/2 + 0.5*(0.25+9)/2
    assert float(losses.least_squares_discriminator_loss(REAL, FAKE)) == pytest.approx(1.25 + 2.3125)
    # a=-1, b=1 (Mao's other setting): 0.5*(1+4)/2 + 0.5*((1.5)^2+(-2)^2)/2
    value = losses.least_squares_discriminator_loss(REAL, FAKE, a=-1.0, b=1.0)
    assert float(value) == pytest.approx(1.25 + 0.5 * (2.25 + 4.0) / 2)
    # c=1: 0.5*((0.5-1)^2 + (-3-1)^2)/2
    assert float(losses.least_squares_generator_loss(FAKE)) == pytest.approx(0.5 * (0.25 + 16) / 2)
    assert float(losses.least_squares_generator_loss(FAKE, c=0.0)) == pytest.approx(0.5 * (0.25 + 9) / 2)


def test_wasserstein_losses():
    # mean(f) - mean(r) = -1.25 - 0.5
    assert float(losses.wasserstein_discriminator_loss(REAL, FAKE)) == pytest.approx(-1.75)
    assert float(losses.wasserstein_generator_loss(FAKE)) == pytest.approx(1.25)


def test_hinge_losses():
    # mean(relu(1-r)) = (0 + 2)/2 = 1; mean(relu(1+f)) = (1.5 + 0)/2 = 0.75
    assert float(losses.hinge_discriminator_loss(REAL, FAKE)) == pytest.approx(1.75)
    assert float(losses.hinge_generator_loss(FAKE)) == pytest.approx(1.25)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_patchgan_maps_average_over_every_element(name):
    """A (B, H, W, 1) map equals the image-level loss on its flattened logits."""
    rng = np.random.default_rng(0)
    real_map = rng.normal(size=(2, 3, 3, 1)).astype("float32")
    fake_map = rng.normal(size=(2, 3, 3, 1)).astype("float32")
    pair = losses.get_loss(name)
    flat = lambda x: x.reshape(-1, 1)  # noqa: E731
    assert float(pair.discriminator(real_map, fake_map)) == pytest.approx(
        float(pair.discriminator(flat(real_map), flat(fake_map))), rel=1e-5
    )
    assert float(pair.generator(fake_map)) == pytest.approx(float(pair.generator(flat(fake_map))), rel=1e-5)


def test_gradient_penalty():
    # per-example norms: ||(3, 4)|| = 5, ||(0, 0)|| = 0 -> mean((5-1)^2, (0-1)^2) = (16 + 1)/2
    gradients = np.array([[[[3.0]], [[4.0]]], [[[0.0]], [[0.0]]]], dtype="float32")  # (2, 2, 1, 1)
    assert float(losses.gradient_penalty(gradients)) == pytest.approx(8.5, rel=1e-5)


def test_gradient_penalty_has_finite_gradient_at_zero():
    import tensorflow as tf

    gradients = tf.zeros((2, 4, 4, 1))
    with tf.GradientTape() as tape:
        tape.watch(gradients)
        penalty = losses.gradient_penalty(gradients)
    assert np.all(np.isfinite(tape.gradient(penalty, gradients).numpy()))


def test_r1_penalty():
    # gamma/2 * mean(||g||^2) = 10/2 * (25 + 1)/2
    gradients = np.array([[3.0, 4.0], [1.0, 0.0]], dtype="float32")
    assert float(losses.r1_penalty(gradients, gamma=10.0)) == pytest.approx(65.0)


def test_interpolation_weights_are_uniform_per_example():
    import keras

    weights = np.asarray(losses.interpolation_weights(20_000, 4, seed=keras.random.SeedGenerator(1)))
    assert weights.shape == (20_000, 1, 1, 1)
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    assert weights.mean() == pytest.approx(0.5, abs=0.01)
    assert weights.var() == pytest.approx(1 / 12, abs=0.005)  # U(0, 1), not a normal
    # each decile holds about 10% of the draws
    counts, _ = np.histogram(weights, bins=10, range=(0, 1))
    assert np.all(np.abs(counts / weights.size - 0.1) < 0.01)


def test_interpolate():
    real, fake = np.full((2, 1), 4.0, "float32"), np.zeros((2, 1), "float32")
    weights = np.array([[0.25], [1.0]], "float32")
    np.testing.assert_allclose(np.asarray(losses.interpolate(real, fake, weights)), [[1.0], [4.0]])


def test_clip_weights():
    import keras

    variable = keras.Variable(np.array([-0.5, 0.005, 0.2], "float32"))
    losses.clip_weights([variable], 0.01)
    np.testing.assert_allclose(np.asarray(variable), [-0.01, 0.005, 0.01])


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="hinge"):
        losses.get_loss("nope")
