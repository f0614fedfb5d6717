"""Adversarial losses and penalties, as pure functions of discriminator outputs.

Every function takes raw discriminator outputs ("logits": no sigmoid applied) of any shape,
e.g. ``(B, 1)`` for an image-level discriminator or ``(B, H, W, 1)`` for a PatchGAN map, and
averages over all elements. Discriminator losses take ``(real_logits, fake_logits)``, generator
losses take ``fake_logits``; both are minimised. ``sigma`` below is the logistic sigmoid.

Naming follows TF-GAN (``xxx_discriminator_loss`` / ``xxx_generator_loss``). Folding the
sigmoid into the loss (``log sigma(x) = -softplus(-x)``) is the numerically stable form of the
papers' formulas; it is the only deviation from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from keras import ops

# --- Minimax / non-saturating (Goodfellow et al. 2014, "Generative Adversarial Nets") --------


def minimax_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """``-E[log D(x)] - E[log(1 - D(G(z)))]`` with ``D = sigma(logits)`` (Goodfellow 2014, eq. 1).

    ``label_smoothing`` s > 0 is one-sided label smoothing (Salimans et al. 2016, sec. 3.4):
    the target for real samples becomes ``1 - s``, the target for fakes stays 0.
    """
    real_logits = ops.convert_to_tensor(real_logits, "float32")
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    real_target = 1.0 - label_smoothing
    # Binary cross-entropy with logits: t*softplus(-x) + (1-t)*softplus(x).
    real_loss = real_target * ops.softplus(-real_logits) + (1.0 - real_target) * ops.softplus(
        real_logits
    )
    fake_loss = ops.softplus(fake_logits)
    return ops.mean(real_loss) + ops.mean(fake_loss)


def minimax_generator_loss(fake_logits):
    """``E[log(1 - D(G(z)))]``, the saturating generator loss of the minimax game (Goodfellow 2014, eq. 1)."""
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return -ops.mean(ops.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits):
    """``-E[log D(G(z))]``, the heuristic generator loss of Goodfellow 2014 (sec. 3), used in practice."""
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return ops.mean(ops.softplus(-fake_logits))


# --- Least squares (Mao et al. 2017, "Least Squares Generative Adversarial Networks") --------


def least_squares_discriminator_loss(real_logits, fake_logits, a=0.0, b=1.0):
    """``1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]`` (Mao 2017, eq. 2; a=0, b=1 as in sec. 3.2.3)."""
    real_logits = ops.convert_to_tensor(real_logits, "float32")
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return 0.5 * ops.mean(ops.square(real_logits - b)) + 0.5 * ops.mean(
        ops.square(fake_logits - a)
    )


def least_squares_generator_loss(fake_logits, c=1.0):
    """``1/2 E[(D(G(z)) - c)^2]`` (Mao 2017, eq. 2; c=1)."""
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return 0.5 * ops.mean(ops.square(fake_logits - c))


# --- Wasserstein (Arjovsky et al. 2017, "Wasserstein GAN") ------------------------------------


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """Critic loss ``E[f(G(z))] - E[f(x)]``, minus the dual estimate of W1 (Arjovsky 2017, Alg. 1)."""
    real_logits = ops.convert_to_tensor(real_logits, "float32")
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return ops.mean(fake_logits) - ops.mean(real_logits)


def wasserstein_generator_loss(fake_logits):
    """Generator loss ``-E[f(G(z))]`` (Arjovsky 2017, Alg. 1)."""
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return -ops.mean(fake_logits)


# --- Hinge (Lim & Ye 2017, "Geometric GAN") -----------------------------------------------------


def hinge_discriminator_loss(real_logits, fake_logits):
    """``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]`` (Lim & Ye 2017, eq. 7)."""
    real_logits = ops.convert_to_tensor(real_logits, "float32")
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """``-E[D(G(z))]`` (Lim & Ye 2017, eq. 8)."""
    fake_logits = ops.convert_to_tensor(fake_logits, "float32")
    return -ops.mean(fake_logits)


# --- Penalties and constraints ------------------------------------------------------------------


def interpolation_weights(batch_size, ndim, seed=None):
    """Per-example weights ``eps ~ U(0, 1)`` of shape ``(B, 1, ..., 1)`` (Gulrajani 2017, Alg. 1).

    ``ndim`` is the rank of the samples being interpolated (4 for image batches).
    """
    import keras

    shape = (batch_size,) + (1,) * (ndim - 1)
    return keras.random.uniform(shape, minval=0.0, maxval=1.0, seed=seed)


def interpolate(real, fake, weights):
    """``x_hat = eps * x + (1 - eps) * x_tilde``, the points where WGAN-GP penalises the critic."""
    return weights * real + (1.0 - weights) * fake


def _per_example_squared_norm(gradients):
    gradients = ops.convert_to_tensor(gradients, "float32")
    axes = tuple(range(1, len(gradients.shape)))
    return ops.sum(ops.square(gradients), axis=axes)


def gradient_penalty(gradients, target=1.0, epsilon=1e-12):
    """``E[(||grad D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017, "Improved Training of WGANs", Alg. 1).

    ``gradients`` are the critic's input gradients at the interpolates, shape ``(B, ...)``.
    ``epsilon`` sits inside the square root so the gradient of the norm stays finite at 0.
    """
    norms = ops.sqrt(_per_example_squared_norm(gradients) + epsilon)
    return ops.mean(ops.square(norms - target))


def r1_penalty(gradients, gamma):
    """``gamma/2 * E_x[||grad D(x)||^2]`` on real data (Mescheder et al. 2018, eq. 9)."""
    return 0.5 * gamma * ops.mean(_per_example_squared_norm(gradients))


def clip_weights(variables, clip_value):
    """Clip every variable to ``[-c, c]`` in place (Arjovsky 2017, Alg. 1, line 7)."""
    for variable in variables:
        variable.assign(ops.clip(variable, -clip_value, clip_value))


# --- Loss pairs by name ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialLoss:
    """A discriminator loss and the generator loss played against it."""

    discriminator: Callable
    generator: Callable
    paper: str
    supports_label_smoothing: bool = False


LOSSES = {
    "minimax": AdversarialLoss(
        minimax_discriminator_loss, minimax_generator_loss, "Goodfellow et al. 2014", True
    ),
    "non_saturating": AdversarialLoss(
        minimax_discriminator_loss, non_saturating_generator_loss, "Goodfellow et al. 2014", True
    ),
    "least_squares": AdversarialLoss(
        least_squares_discriminator_loss, least_squares_generator_loss, "Mao et al. 2017"
    ),
    "wasserstein": AdversarialLoss(
        wasserstein_discriminator_loss, wasserstein_generator_loss, "Arjovsky et al. 2017"
    ),
    "hinge": AdversarialLoss(hinge_discriminator_loss, hinge_generator_loss, "Lim & Ye 2017"),
}


def get_loss(name):
    """Look up a loss pair by name; the error lists the known names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; choose one of {sorted(LOSSES)}.") from None
