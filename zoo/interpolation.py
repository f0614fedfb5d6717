"""Walks through a GAN's latent space: ``interpolate(z_a, z_b, steps, distribution)``.

Linear interpolation suits a uniform prior (the cube [-1, 1]^d is convex, every point of the
segment is a likely code). For a Gaussian prior, codes concentrate on the shell of radius
~sqrt(d), and the midpoint of a straight line between two of them has norm ~sqrt(d / 2): an
unlikely code. Spherical linear interpolation (slerp; Shoemake 1985, proposed for GANs by
White 2016, "Sampling Generative Networks") follows the great circle instead and keeps the norm
between the two endpoints'. Plain TF ops, so the served ``interpolate`` signature
(``zoo.kinds.unconditional``) runs the same code.
"""

from __future__ import annotations

import tensorflow as tf

# Below this angle (radians) slerp falls back to lerp: sin(omega) ~ 0 would divide by zero,
# and the two agree to float32 precision there.
_SLERP_MIN_ANGLE = 1e-4


def interpolation_weights(steps):
    """``steps`` evenly spaced weights from 0 to 1 (both ends included), float32 [steps]."""
    return tf.linspace(0.0, 1.0, tf.cast(steps, tf.int32))


def lerp(z_a, z_b, t):
    """``(1 - t) z_a + t z_b`` for each weight of ``t`` [steps]: [steps, latent_dim]."""
    t = tf.reshape(tf.cast(t, tf.float32), [-1, 1])
    return (1.0 - t) * z_a[tf.newaxis] + t * z_b[tf.newaxis]


def slerp(z_a, z_b, t):
    """Spherical interpolation ``sin((1-t)w)/sin(w) z_a + sin(tw)/sin(w) z_b``, w the angle
    between the codes (White 2016, eq. 1); lerp when the codes are (nearly) parallel."""
    z_a = tf.convert_to_tensor(z_a, tf.float32)
    z_b = tf.convert_to_tensor(z_b, tf.float32)
    t = tf.reshape(tf.cast(t, tf.float32), [-1, 1])
    cosine = tf.reduce_sum(tf.math.l2_normalize(z_a) * tf.math.l2_normalize(z_b))
    omega = tf.acos(tf.clip_by_value(cosine, -1.0, 1.0))
    sin_omega = tf.sin(omega)
    spherical = (tf.sin((1.0 - t) * omega) * z_a[tf.newaxis]
                 + tf.sin(t * omega) * z_b[tf.newaxis]) / tf.maximum(sin_omega, 1e-12)
    return tf.where(omega < _SLERP_MIN_ANGLE, lerp(z_a, z_b, t), spherical)


def interpolate(z_a, z_b, steps, distribution):
    """``steps`` codes from ``z_a`` to ``z_b`` (both included), [steps, latent_dim]: spherical
    for a ``"normal"`` prior, linear for a ``"uniform"`` one (see the module docstring)."""
    z_a = tf.convert_to_tensor(z_a, tf.float32)
    z_b = tf.convert_to_tensor(z_b, tf.float32)
    t = interpolation_weights(steps)
    if distribution == "normal":
        return slerp(z_a, z_b, t)
    if distribution == "uniform":
        return lerp(z_a, z_b, t)
    raise ValueError(f"latent distribution must be 'normal' or 'uniform', got {distribution!r}.")
