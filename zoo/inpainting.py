"""Semantic image inpainting by latent optimisation (Yeh et al. 2016, "Semantic Image Inpainting
with Deep Generative Models", sec. 3), for every unconditional model of the zoo.

Given a corrupted image ``y`` and its mask (here 1 = missing, the white of a PNG mask; the
paper's ``M`` is the complement), the method searches the generator's latent space for the
closest image the generator can make, then pastes its hole into ``y``:

1. **Importance weights** (eq. 2): ``W_i = sum_{j in N(i)} missing_j / |N(i)|`` for a known
   pixel ``i`` and 0 in the hole, ``N(i)`` the 7x7 window around ``i``. Known pixels next to the
   hole count most; far ones not at all. At the image border the window is reflected (scipy's
   ``convolve2d(boundary="symm")``, as the public reimplementations of the paper do), so
   ``|N(i)|`` is always 49.
2. **Loss** (eqs. 3-5): contextual ``L_c(z) = ||W * (G(z) - y)||_1`` plus ``lambda * L_p(z)``
   with the perceptual (prior) loss ``L_p(z) = log(1 - D(G(z)))``, lambda = 0.003. For models
   trained with a cross-entropy loss (minimax, non-saturating) ``L_p`` is exactly the paper's
   (``zoo.losses.minimax_generator_loss`` per image); a critic (WGAN, least squares, hinge) is
   no probability, so its own generator loss stands in (named deviation).
3. **Search**: Adam on ``z`` for a fixed number of steps from several random starts drawn from
   the prior, keeping ``z`` in the prior's range after every step: clipped to [-1, 1] for a
   uniform prior (sec. 5.1); for a Gaussian prior (the paper has none) ``z`` is projected onto
   the ball of radius ``sqrt(latent_dim)``, where the prior's mass concentrates. The start
   with the lowest final loss wins (the restarts are ours: the paper runs one start).
4. **Poisson blending** (eq. 6): ``x = argmin ||grad x - grad G(z)||^2`` with ``x = y`` on the
   known pixels (Perez et al. 2003): the discrete Poisson equation on the hole, solved by
   conjugate gradients with a fixed iteration budget, so it is plain TF ops that a SavedModel
   carries. Without blending the generated pixels are pasted into the hole as they are.

Adam is written out on tensors (Kingma & Ba 2015, Alg. 1, their default betas) instead of
``keras.optimizers.Adam``: Keras optimizers update variables of a fixed shape, while the served
graph optimises a loop-carried tensor whose batch size is the request's. Everything is TF ops,
so ``Inpainter.__call__`` is what the ``inpaint`` signature runs (``zoo/kinds/unconditional.py``).

Defaults that deviate from the paper, for a CPU: 300 Adam steps (paper: 1500) at learning rate
0.03 with 4 restarts; see docs/inpainting.md for the measured effect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from zoo import losses as zoo_losses

WINDOW = 7  # Yeh et al. 2016, sec. 3.3
PERCEPTUAL_WEIGHT = 0.003  # lambda, Yeh et al. 2016, sec. 5.1
ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba 2015, Alg. 1
ADAM_EPSILON = 1e-8
CROSS_ENTROPY_LOSSES = ("minimax", "non_saturating")


@dataclass(frozen=True)
class InpaintingOptions:
    """How the latent search runs; the defaults are the served ones (see the module doc)."""

    steps: int = 300
    restarts: int = 4
    learning_rate: float = 0.03
    perceptual_weight: float = PERCEPTUAL_WEIGHT
    window: int = WINDOW
    blend: bool = True
    seed: int = 0  # of the stateless draws of the starting codes (same request, same answer)

    def __post_init__(self):
        for name in ("steps", "restarts", "window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"inpainting {name} must be >= 1, got {getattr(self, name)}.")
        if int(self.window) % 2 == 0:
            raise ValueError(f"inpainting window must be odd (centred on the pixel), got {self.window}.")
        if not self.learning_rate > 0:
            raise ValueError(f"inpainting learning_rate must be > 0, got {self.learning_rate}.")
        if self.perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0, got {self.perceptual_weight}.")


# --- Masks --------------------------------------------------------------------------------------


def importance_weights(masks, window=WINDOW):
    """Yeh et al. eq. 2: per known pixel, the fraction of missing pixels in its ``window`` x
    ``window`` neighbourhood (reflected at the border); 0 in the hole.

    ``masks``: float [batch, H, W, 1], 1 = missing. Returns the same shape.
    """
    masks = tf.convert_to_tensor(masks, tf.float32)
    half = window // 2
    padded = tf.pad(masks, [[0, 0], [half, half], [half, half], [0, 0]], mode="SYMMETRIC")
    kernel = tf.ones([window, window, 1, 1], tf.float32) / float(window * window)
    missing_fraction = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    return (1.0 - masks) * missing_fraction


def check_inputs(images, masks, image_shape, signature="inpaint"):
    """``(images, masks)`` once they fit the model and each other, else INVALID_ARGUMENT naming
    the problem: images of the model's height, width and channels; masks [batch, H, W, 1] of the
    images' batch, height and width; every value 0 (known) or 1 (missing); each mask with at
    least one missing and one known pixel (nothing to fill / nothing to match)."""
    images = tf.convert_to_tensor(images, tf.float32)
    masks = tf.convert_to_tensor(masks, tf.float32)
    height, width, channels = (int(d) for d in image_shape)
    image_dims, mask_dims = tf.shape(images), tf.shape(masks)
    checks = [tf.debugging.Assert(
        tf.logical_and(tf.equal(tf.rank(images), 4),
                       tf.reduce_all(tf.equal(image_dims[1:], [height, width, channels]))),
        [f"{signature}: images must be [batch, {height}, {width}, {channels}] (the generator's "
         "image size); got shape", image_dims], summarize=8)]
    with tf.control_dependencies(checks):
        fits = tf.logical_and(tf.equal(tf.rank(masks), 4),
                              tf.reduce_all(tf.equal(mask_dims, tf.concat([image_dims[:3], [1]], 0))))
        checks.append(tf.debugging.Assert(fits, [
            f"{signature}: masks must be [batch, height, width, 1] with the images' batch, height "
            "and width (1 = missing, 0 = known); got masks", mask_dims, "for images", image_dims],
            summarize=8))
    with tf.control_dependencies(checks):
        binary = tf.reduce_all(tf.logical_or(tf.equal(masks, 0.0), tf.equal(masks, 1.0)))
        checks.append(tf.debugging.Assert(binary, [
            f"{signature}: masks must be binary, 0 = known and 1 = missing (PNG: black and "
            "white, 0 and 255); threshold soft masks first"]))
    with tf.control_dependencies(checks):
        missing = tf.reduce_sum(masks, axis=[1, 2, 3])
        pixels = tf.cast(height * width, tf.float32)
        checks.append(tf.debugging.Assert(tf.reduce_all(missing > 0), [
            f"{signature}: a mask marks no missing pixel, nothing to inpaint; at batch index",
            tf.where(missing <= 0)[:, 0]], summarize=20))
        checks.append(tf.debugging.Assert(tf.reduce_all(missing < pixels), [
            f"{signature}: a mask marks every pixel missing, no context to inpaint from "
            "(use generate_from_seed for a free sample); at batch index",
            tf.where(missing >= pixels)[:, 0]], summarize=20))
    with tf.control_dependencies(checks):
        return tf.identity(images), tf.identity(masks)


# --- Poisson blending ---------------------------------------------------------------------------


def _neighbour_sum(images):
    """Sum of the 4-neighbours inside the image at each pixel (zero outside)."""
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1]
            + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:])


def _laplacian(images, degree):
    """``sum_{q in N_p} (u_p - u_q)`` over the in-image 4-neighbours ``N_p`` of each pixel."""
    return degree * images - _neighbour_sum(images)


def poisson_blend(images, generated, masks, max_iterations=None, tolerance=1e-6):
    """Perez et al. 2003, eq. 7, as Yeh et al. eq. 6 uses it: inside the hole, the image whose
    Laplacian is ``generated``'s, equal to ``images`` on the known pixels.

    Solves ``A x = b`` on the hole pixels, ``A = hole * L * hole`` (``L`` the graph Laplacian of
    the pixel grid, an SPD block once any pixel is known), ``b = hole * (L generated - L known)``,
    by conjugate gradients per image and channel, starting from ``generated``, until the
    residual falls below ``tolerance * |b|`` or after ``max_iterations`` (default H * W, CG's
    exact-arithmetic bound). Returns the blended images, clipped to [-1, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    generated = tf.convert_to_tensor(generated, tf.float32)
    hole = tf.broadcast_to(tf.convert_to_tensor(masks, tf.float32), tf.shape(images))
    known = 1.0 - hole
    degree = _neighbour_sum(tf.ones_like(images))
    if max_iterations is None:
        max_iterations = tf.shape(images)[1] * tf.shape(images)[2]

    def operator(x):
        return hole * _laplacian(hole * x, degree)

    def dot(a, b):  # per image and channel: [batch, 1, 1, C]
        return tf.reduce_sum(a * b, axis=[1, 2], keepdims=True)

    b = hole * (_laplacian(generated, degree) - _laplacian(known * images, degree))
    x = hole * generated
    r = b - operator(x)
    p, rs = r, dot(r, r)
    threshold = tolerance**2 * dot(b, b)

    def unconverged(i, x, r, p, rs):
        return tf.logical_and(i < max_iterations, tf.reduce_any(rs > threshold))

    def iterate(i, x, r, p, rs):
        ap = operator(p)
        alpha = tf.math.divide_no_nan(rs, dot(p, ap))
        x = x + alpha * p
        r = r - alpha * ap
        rs_next = dot(r, r)
        p = r + tf.math.divide_no_nan(rs_next, rs) * p
        return i + 1, x, r, p, rs_next

    _, x, *_ = tf.while_loop(unconverged, iterate, [tf.constant(0), x, r, p, rs])
    return tf.clip_by_value(known * images + hole * x, -1.0, 1.0)


def paste(images, generated, masks):
    """The no-blending completion: generated pixels in the hole, ``images`` elsewhere."""
    masks = tf.convert_to_tensor(masks, tf.float32)
    return (1.0 - masks) * images + masks * generated


# --- The latent search --------------------------------------------------------------------------


def perceptual_loss_fn(loss_name):
    """Per-batch ``L_p`` of logits: the paper's ``log(1 - D(G(z)))`` for cross-entropy models,
    the model's own generator loss for critics (see the module doc)."""
    if loss_name in CROSS_ENTROPY_LOSSES:
        return zoo_losses.minimax_generator_loss
    return zoo_losses.get_loss(loss_name).generator


class Inpainter:
    """Yeh et al.'s completion for one generator/discriminator pair (see the module doc).

    ``Inpainter(model)(images, masks)`` takes float images [batch, H, W, C] in [-1, 1] and masks
    [batch, H, W, 1] (1 = missing) and returns a dict: ``images`` (completed), ``generated``
    (``G(z)`` of the best start), ``z`` and ``loss`` (the best start's final loss), all TF ops
    (it is traced into the served ``inpaint`` signature). ``model`` is a
    ``zoo.base.AdversarialModel`` (any unconditional zoo model).
    """

    def __init__(self, model, options=None):
        self.generator = model.generator
        self.discriminator = model.discriminator
        self.latent_dim = int(model.latent_dim)
        self.distribution = model.latent_distribution
        self.image_shape = tuple(int(d) for d in model.image_shape)
        self.perceptual = perceptual_loss_fn(model.loss_name)
        self.options = options or InpaintingOptions()
        self._function = None

    def starting_codes(self, count):
        """``count`` codes from the prior, stateless (seeded by the options' seed)."""
        seed = tf.constant([int(self.options.seed), 16], tf.int64)
        shape = tf.stack([count, self.latent_dim])
        if self.distribution == "uniform":
            return tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
        return tf.random.stateless_normal(shape, seed)

    def project(self, z):
        """Back into the prior's range: the cube for uniform, the sqrt(d)-ball for normal."""
        if self.distribution == "uniform":
            return tf.clip_by_value(z, -1.0, 1.0)
        return tf.clip_by_norm(z, float(np.sqrt(self.latent_dim)), axes=[1])

    def losses(self, z, images, weights, per_code=True):
        """``L_c + lambda L_p`` per code [n] (``per_code``) or summed over the codes (the
        search's objective: the codes are independent, so its gradient is each code's own)."""
        generated = self.generator(z, training=False)
        contextual = tf.reduce_sum(tf.abs(weights * (generated - images)), axis=[1, 2, 3])
        if not self.options.perceptual_weight:
            return contextual if per_code else tf.reduce_sum(contextual)
        logits = self.discriminator(generated, training=False)
        if per_code:
            perceptual = tf.map_fn(lambda one: self.perceptual(one[tf.newaxis]), logits)
            return contextual + self.options.perceptual_weight * perceptual
        # Every zoo loss is a mean over its elements, so n * L(all logits) = sum of the n losses.
        codes = tf.cast(tf.shape(z)[0], tf.float32)
        return (tf.reduce_sum(contextual)
                + self.options.perceptual_weight * codes * self.perceptual(logits))

    def search(self, images, weights):
        """Adam on ``z`` from ``restarts`` starts per image: the best start's ``(z, loss)``."""
        options = self.options
        batch = tf.shape(images)[0]
        restarts = int(options.restarts)
        images_r = tf.tile(images, [restarts, 1, 1, 1])  # start-major: index = start * batch + i
        weights_r = tf.tile(weights, [restarts, 1, 1, 1])
        z = self.starting_codes(restarts * batch)
        beta_1, beta_2 = ADAM_BETAS

        def step(t, z, m, v):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = self.losses(z, images_r, weights_r, per_code=False)
            gradient = tape.gradient(loss, z)
            m = beta_1 * m + (1.0 - beta_1) * gradient
            v = beta_2 * v + (1.0 - beta_2) * tf.square(gradient)
            t_float = tf.cast(t + 1, tf.float32)
            m_hat = m / (1.0 - beta_1**t_float)
            v_hat = v / (1.0 - beta_2**t_float)
            z = self.project(z - options.learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON))
            return t + 1, z, m, v

        _, z, _, _ = tf.while_loop(
            lambda t, *_: t < int(options.steps), step,
            [tf.constant(0), z, tf.zeros_like(z), tf.zeros_like(z)])
        loss = self.losses(z, images_r, weights_r)
        best = tf.argmin(tf.reshape(loss, [restarts, batch]), axis=0, output_type=tf.int32)
        index = best * batch + tf.range(batch)
        return tf.gather(z, index), tf.gather(loss, index)

    def __call__(self, images, masks, signature="inpaint"):
        images, masks = check_inputs(images, masks, self.image_shape, signature)
        weights = importance_weights(masks, self.options.window)
        z, loss = self.search(images, weights)
        generated = self.generator(z, training=False)
        if self.options.blend:
            completed = poisson_blend(images, generated, masks)
        else:
            completed = paste(images, generated, masks)
        return {"images": completed, "generated": generated, "z": z, "loss": loss}

    def complete(self, images, masks):
        """``__call__`` on numpy arrays (masks may lack the channel axis), traced once per
        ``Inpainter`` with dynamic shapes; returns numpy arrays; bad inputs raise ValueError."""
        masks = np.asarray(masks, np.float32)
        if masks.ndim == 3:
            masks = masks[..., np.newaxis]
        if self._function is None:
            spec = tf.TensorSpec([None, None, None, None], tf.float32)
            self._function = tf.function(self.__call__, input_signature=[spec, spec])
        try:
            result = self._function(tf.constant(images, tf.float32), tf.constant(masks))
        except tf.errors.InvalidArgumentError as error:
            from export.serving.errors import tf_error_message  # the op's own words

            raise ValueError(tf_error_message(error.message)) from None
        return {name: value.numpy() for name, value in result.items()}


def inpaint(model, images, masks, options=None, **overrides):
    """Complete ``images`` (float [batch, H, W, C] in [-1, 1]) where ``masks`` (float [batch,
    H, W, 1] or [batch, H, W], 1 = missing) say, with ``model``'s generator (Yeh et al. 2016).

    ``options`` is an ``InpaintingOptions``; keyword ``overrides`` replace single fields
    (``inpaint(model, x, m, steps=100, blend=False)``). Returns numpy arrays ``images``,
    ``generated``, ``z`` and ``loss`` (see ``Inpainter``). Bad inputs raise ValueError. To
    complete many batches, build one ``Inpainter`` and call its ``complete`` (traced once).
    """
    return Inpainter(model, replace(options or InpaintingOptions(), **overrides)).complete(
        images, masks)
