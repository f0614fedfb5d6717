"""Serving signatures of the image-to-image GANs (pix2pix, CycleGAN).

``image_to_image_archive(model)`` builds a ``keras.export.ExportArchive``; write it with
``export.saved_model.export_model(model, base, name, version, archive=image_to_image_archive(model))``.

A model with one generator (pix2pix) gets:

- ``serving_default``: ``images`` float32 [batch, H, W, C_in] in [-1, 1] -> ``images`` float32
  [batch, H, W, C_out] in [-1, 1];
- ``translate_bytes``: ``image_bytes`` string [batch] (PNG or JPEG, all of one size) ->
  ``image_png_bytes`` string [batch].

CycleGAN exports both directions in one SavedModel: ``a_to_b`` and ``b_to_a`` (float images,
as ``serving_default``), ``a_to_b_bytes`` and ``b_to_a_bytes`` (encoded images), and
``serving_default`` = ``a_to_b``.

H and W are dynamic: the generators are fully convolutional and take any size that is a
multiple of their total stride (2^depth for pix2pix's U-Net, 4 for CycleGAN's ResNet). Any other
size is refused inside the graph (``tf.debugging.assert_equal``) before the generator runs, so
TF Serving answers INVALID_ARGUMENT with a message naming the stride, instead of failing deep
in a convolution. pix2pix's generator keeps its dropout at inference (the paper's noise), so
its outputs vary from call to call unless it was built with ``test_time_dropout=False``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from export.saved_model import encode_png_batch


def check_size(images, stride, signature):
    """``images`` once H and W are known to be multiples of ``stride`` (else INVALID_ARGUMENT)."""
    size = tf.shape(images)[1:3]
    check = tf.debugging.assert_equal(
        size, size // stride * stride,
        message=f"{signature}: image height and width must be multiples of {stride} (the "
        "generator's total stride); x = the input's [height, width], y = the multiples of "
        f"{stride} below them",
    )
    with tf.control_dependencies([check]):
        return tf.identity(images)


def decode_batch(image_bytes, channels):
    """PNG/JPEG strings -> float32 [batch, H, W, channels] in [-1, 1] (all of one size)."""

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        return tf.cast(image, tf.float32) / 127.5 - 1.0

    return tf.map_fn(
        decode, image_bytes, fn_output_signature=tf.TensorSpec([None, None, channels], tf.float32)
    )


def _endpoints(generator, stride, name):
    """The float and the bytes endpoint functions of one generator."""
    channels = int(generator.input_shape[-1])

    def translate(images):
        return {"images": generator(check_size(images, stride, name), training=False)}

    def translate_bytes(image_bytes):
        images = check_size(decode_batch(image_bytes, channels), stride, name)
        return {"image_png_bytes": encode_png_batch(generator(images, training=False))}

    images_spec = tf.TensorSpec([None, None, None, channels], tf.float32, name="images")
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    return (translate, images_spec), (translate_bytes, bytes_spec)


def image_to_image_archive(model):
    """An ``ExportArchive`` with the translation signatures of ``model`` (see the module doc).

    ``model`` exposes ``translators`` (signature name -> generator; the first is the default
    direction) and ``generator_stride``, as ``zoo.models.pix2pix.Pix2Pix`` and
    ``zoo.models.cyclegan.CycleGAN`` do.
    """
    translators = dict(model.translators)
    stride = int(model.generator_stride)
    archive = keras.export.ExportArchive()
    for generator in translators.values():
        archive.track(generator)
    if len(translators) == 1:
        (generator,) = translators.values()
        endpoints = _endpoints(generator, stride, "serving_default")
        (translate, images_spec), (translate_bytes, bytes_spec) = endpoints
        archive.add_endpoint("serving_default", translate, input_signature=[images_spec])
        archive.add_endpoint("translate_bytes", translate_bytes, input_signature=[bytes_spec])
        return archive
    for index, (name, generator) in enumerate(translators.items()):
        (translate, images_spec), (translate_bytes, bytes_spec) = _endpoints(generator, stride, name)
        archive.add_endpoint(name, translate, input_signature=[images_spec])
        archive.add_endpoint(f"{name}_bytes", translate_bytes, input_signature=[bytes_spec])
        if index == 0:
            archive.add_endpoint("serving_default", translate, input_signature=[images_spec])
    return archive
