"""Serving signatures that use a trained unconditional generator: inpainting and interpolation.

``add_latent_endpoints(archive, model)`` adds to an unconditional model's ``ExportArchive``
(``zoo/kinds/unconditional.py`` calls it for every unconditional model):

- ``inpaint``: ``images`` float32 [batch, H, W, C] in [-1, 1] and ``masks`` float32
  [batch, H, W, 1] (1 = missing, 0 = known) -> ``images`` (completed: Yeh et al. 2016's latent
  search and Poisson blending, ``zoo.inpainting``) and ``generated`` (``G(z)`` of the search);
- ``inpaint_bytes``: ``image_bytes`` and ``mask_bytes`` string [batch] (PNG or JPEG; masks
  white = missing, black = known, nothing in between) -> ``image_png_bytes`` string [batch];
- ``interpolate``: ``seed_a``, ``seed_b`` and ``steps`` int64 scalars -> ``images`` float32
  [steps, H, W, C] and ``images_png_bytes`` [steps], the walk from the code of ``seed_a`` to
  that of ``seed_b`` (the codes ``generate_from_seed`` uses; spherical for a Gaussian prior,
  linear for a uniform one, ``zoo.interpolation``). ``steps`` must be in [2, max_steps],
  ``max_steps`` fixed at export (``DEFAULT_MAX_INTERPOLATION_STEPS``).

The latent search runs inside the graph (a ``tf.while_loop`` of Adam steps with a gradient
tape, then a conjugate-gradient Poisson solve), so TensorFlow alone serves it. Bad requests
(wrong image size, masks of another size, all-known or all-missing masks, non-binary masks,
step counts out of range) fail with INVALID_ARGUMENT naming the problem.
"""

from __future__ import annotations

import tensorflow as tf

from export.saved_model import encode_png_batch, latent_from_seeds
from export.translation import decode_batch
from zoo.inpainting import Inpainter, InpaintingOptions
from zoo.interpolation import interpolate

DEFAULT_MAX_INTERPOLATION_STEPS = 64

SIGNATURES = ("inpaint", "inpaint_bytes", "interpolate")


def check_steps(steps, max_steps, signature="interpolate"):
    """``steps`` once it is in [2, max_steps] (else INVALID_ARGUMENT)."""
    check = tf.debugging.Assert(
        tf.logical_and(steps >= 2, steps <= max_steps),
        [f"{signature}: steps must be between 2 and {max_steps} (the limit set at export); got",
         steps])
    with tf.control_dependencies([check]):
        return tf.identity(steps)


def decode_masks(mask_bytes, signature="inpaint_bytes"):
    """PNG/JPEG mask strings [batch] -> float32 [batch, H, W, 1]: white 1 = missing, black 0 =
    known (grey stays in between, for ``check_inputs`` to refuse)."""
    return (decode_batch(mask_bytes, 1, signature) + 1.0) / 2.0


def seed_walk(model, seed_a, seed_b, steps, max_steps=DEFAULT_MAX_INTERPOLATION_STEPS):
    """Images [steps, H, W, C] of ``model``'s walk from the code of ``seed_a`` to that of
    ``seed_b`` (int64 scalars; the codes of ``generate_from_seed``); what ``interpolate`` serves."""
    steps = check_steps(steps, max_steps)
    distribution = model.latent_distribution
    z = latent_from_seeds(tf.stack([seed_a, seed_b]), model.latent_dim, distribution)
    return model.generator(interpolate(z[0], z[1], steps, distribution), training=False)


def add_latent_endpoints(archive, model, options=None,
                         max_interpolation_steps=DEFAULT_MAX_INTERPOLATION_STEPS):
    """Add ``inpaint``, ``inpaint_bytes`` and ``interpolate`` (module doc) to ``archive``."""
    channels = int(model.image_shape[-1])
    inpainter = Inpainter(model, options or InpaintingOptions())
    max_steps = int(max_interpolation_steps)
    if max_steps < 2:
        raise ValueError(f"max_interpolation_steps must be >= 2, got {max_steps}.")

    def inpaint(images, masks):
        result = inpainter(images, masks, signature="inpaint")
        return {"images": result["images"], "generated": result["generated"]}

    def inpaint_bytes(image_bytes, mask_bytes):
        images = decode_batch(image_bytes, channels, "inpaint_bytes")
        masks = decode_masks(mask_bytes, "inpaint_bytes")
        result = inpainter(images, masks, signature="inpaint_bytes")
        return {"image_png_bytes": encode_png_batch(result["images"])}

    def interpolate_seeds(seed_a, seed_b, steps):
        images = seed_walk(model, seed_a, seed_b, steps, max_steps)
        return {"images": images, "images_png_bytes": encode_png_batch(images)}

    archive.add_endpoint("inpaint", inpaint, input_signature=[
        tf.TensorSpec([None, None, None, channels], tf.float32, name="images"),
        tf.TensorSpec([None, None, None, 1], tf.float32, name="masks")])
    archive.add_endpoint("inpaint_bytes", inpaint_bytes, input_signature=[
        tf.TensorSpec([None], tf.string, name="image_bytes"),
        tf.TensorSpec([None], tf.string, name="mask_bytes")])
    archive.add_endpoint("interpolate", interpolate_seeds, input_signature=[
        tf.TensorSpec([], tf.int64, name="seed_a"),
        tf.TensorSpec([], tf.int64, name="seed_b"),
        tf.TensorSpec([], tf.int64, name="steps")])
    return archive


def signature_lines(max_interpolation_steps=DEFAULT_MAX_INTERPOLATION_STEPS, options=None):
    """Model-card lines of the three signatures."""
    options = options or InpaintingOptions()
    return [
        "`inpaint`: `images` float32 [batch, H, W, C] in [-1, 1] and `masks` float32 "
        "[batch, H, W, 1] (1 = missing) -> `images` (completed) and `generated` (Yeh et al. "
        f"2016: {options.steps} Adam steps x {options.restarts} starts, Poisson blending)",
        "`inpaint_bytes`: `image_bytes` and `mask_bytes` (PNG/JPEG; white = missing) string "
        "[batch] -> `image_png_bytes`",
        "`interpolate`: `seed_a`, `seed_b`, `steps` int64 scalars (2 <= steps <= "
        f"{int(max_interpolation_steps)}) -> `images` [steps, H, W, C] and `images_png_bytes`",
    ]
