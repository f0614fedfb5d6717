"""Serving signatures of the super-resolution models (SRResNet, SRGAN): 4x upscaling.

``super_resolution_archive(model, max_input_pixels)`` builds a ``keras.export.ExportArchive``:

- ``upscale`` (also ``serving_default``): ``images`` float32 [batch, H, W, 3] in [-1, 1], any H
  and W, dynamic batch -> ``images`` float32 [batch, 4H, 4W, 3] (the generator's linear output,
  unclipped);
- ``upscale_bytes``: ``image_bytes`` string [batch] (PNG or JPEG, grey or colour, all of one
  size) -> ``image_png_bytes`` string [batch], RGB PNGs of 4x the height and width.

**Size limit**: an image of more than ``max_input_pixels`` pixels (height x width, fixed when
the model is exported; default ``MAX_INPUT_PIXELS`` = 512 x 512, i.e. outputs up to 2048 x 2048)
is refused with INVALID_ARGUMENT naming the limit, before the generator runs: the generator's
memory and time grow with the output's 16 H W pixels. Zero-size images, non-PNG/JPEG bytes and
batches of mixed sizes are refused the same way (``export.translation``'s checks). The bytes
signature goes through ``export.translation.run_padded`` like the translation models' (the
generator has no stride, so nothing is padded today; a strided one would be padded and cropped
back to 4x the input). Plain TF ops only: real TF Serving serves the export unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from export.saved_model import encode_png_batch
from export.translation import check_positive, decode_batch, run_padded

MAX_INPUT_PIXELS = 512 * 512


def check_input_size(images, max_input_pixels, signature):
    """``images`` once every image has 1..``max_input_pixels`` pixels (else INVALID_ARGUMENT)."""
    images = check_positive(images, signature)
    size = tf.shape(images)[1:3]
    pixels = tf.cast(size[0], tf.int64) * tf.cast(size[1], tf.int64)
    check = tf.debugging.Assert(pixels <= max_input_pixels, [
        f"{signature}: images may have at most {max_input_pixels} pixels (height x width, the limit "
        "set when the model was exported); got [height, width] =", size])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def super_resolution_archive(model, max_input_pixels=MAX_INPUT_PIXELS):
    """An ``ExportArchive`` with ``upscale``, ``serving_default`` and ``upscale_bytes`` (module doc)."""
    max_input_pixels = int(max_input_pixels)
    if max_input_pixels < 1:
        raise ValueError(f"max_input_pixels must be positive, got {max_input_pixels}.")
    generator, scale = model.generator, int(model.scale)

    def upscale(images):
        return {"images": generator(check_input_size(images, max_input_pixels, "upscale"), training=False)}

    def upscale_bytes(image_bytes):
        images = check_input_size(decode_batch(image_bytes, 3, "upscale_bytes"), max_input_pixels,
                                  "upscale_bytes")
        return {"image_png_bytes": encode_png_batch(run_padded(generator, images, 1, scale))}

    images_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    archive = keras.export.ExportArchive()  # endpoints track the variables they use (once)
    archive.add_endpoint("upscale", upscale, input_signature=[images_spec])
    archive.add_endpoint("serving_default", upscale, input_signature=[images_spec])
    archive.add_endpoint("upscale_bytes", upscale_bytes, input_signature=[bytes_spec])
    return archive
