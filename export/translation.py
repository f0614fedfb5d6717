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

H and W are dynamic. The float signatures take any size that is a multiple of the generator's
total stride (2^depth for pix2pix's U-Net, 4 for CycleGAN's ResNet); any other size is refused
inside the graph (``tf.debugging.Assert``) before the generator runs, so TF Serving answers
INVALID_ARGUMENT with a message naming the stride. The bytes signatures take a photo of any
size: ``pad_to_multiple`` extends it (bottom and right, by mirror reflection, so the network
sees image-like content rather than a black band) to the next multiple of the stride, and the
output is cropped back to the input's size (``run_padded``; ``export.super_resolution`` uses the
same for its 4x output). They refuse, with INVALID_ARGUMENT, strings that are
not PNG or JPEG ("image_bytes must be PNG or JPEG", by their magic bytes) and batches of mixed
sizes, all in plain TF ops (no PyFunc: real TF Serving loads the SavedModel as is).
pix2pix's generator keeps its dropout at inference (the paper's noise), so its outputs vary
from call to call unless it was built with ``test_time_dropout=False``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from export.saved_model import encode_png_batch


def check_size(images, stride, signature):
    """``images`` once H and W are positive multiples of ``stride`` (else INVALID_ARGUMENT).

    An empty batch passes whatever its H and W (the bytes signatures give [0, 0, 0, C]).
    """
    shape = tf.shape(images)
    size = shape[1:3]
    fits = tf.logical_and(
        tf.reduce_all(tf.equal(size % stride, 0)),
        tf.logical_or(tf.reduce_all(size > 0), tf.equal(shape[0], 0)),
    )
    check = tf.debugging.Assert(fits, [
        f"{signature}: image height and width must be positive multiples of {stride} (the "
        "total stride of the generator); got [height, width] =",
        size,
    ])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def check_positive(images, signature):
    """``images`` once H and W are positive (else INVALID_ARGUMENT); an empty batch passes."""
    shape = tf.shape(images)
    fits = tf.logical_or(tf.reduce_all(shape[1:3] > 0), tf.equal(shape[0], 0))
    check = tf.debugging.Assert(fits, [
        f"{signature}: image height and width must be positive; got [height, width] =", shape[1:3]])
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _mirror_indices(size, padded_size):
    """Indices ``0..padded_size-1`` into an axis of ``size``, continued by mirror reflection
    (edge pixel repeated: ``... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...``), for pads of any length."""
    period = 2 * tf.maximum(size, 1)
    index = tf.math.floormod(tf.range(padded_size), period)
    return tf.where(index < size, index, period - 1 - index)


def pad_to_multiple(images, stride):
    """``images`` [B, H, W, C] extended at the bottom and right to the next multiples of ``stride``."""
    if stride == 1:
        return images
    size = tf.shape(images)[1:3]
    padded = size + tf.math.floormod(-size, stride)
    images = tf.gather(images, _mirror_indices(size[0], padded[0]), axis=1)
    return tf.gather(images, _mirror_indices(size[1], padded[1]), axis=2)


def run_padded(generator, images, stride, scale=1):
    """``generator`` on ``images`` padded to multiples of ``stride``, its output cropped back to
    ``scale`` times the input's height and width."""
    size = tf.shape(images)[1:3] * scale
    outputs = generator(pad_to_multiple(images, stride), training=False)
    return outputs[:, :size[0], :size[1]]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def check_formats(image_bytes, signature):
    """``image_bytes`` once each string starts as a PNG or JPEG does (else INVALID_ARGUMENT).

    Checked by the files' magic bytes in plain string ops, so the message names the contract
    (and the offending batch indices) instead of the decoder's list of every format it knows.
    """
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, len(JPEG_SIGNATURE)), JPEG_SIGNATURE)
    known = tf.logical_or(is_png, is_jpeg)
    check = tf.debugging.Assert(tf.reduce_all(known), [
        f"{signature}: image_bytes must be PNG or JPEG images; not PNG or JPEG at batch index",
        tf.where(tf.logical_not(known))[:, 0],
    ])
    with tf.control_dependencies([check]):
        return tf.identity(image_bytes)


def decode_batch(image_bytes, channels, signature="translate_bytes"):
    """PNG/JPEG strings -> float32 [batch, H, W, channels] in [-1, 1].

    INVALID_ARGUMENT unless every string is a PNG or JPEG and all have one height and width.
    An empty batch gives [0, 0, 0, channels].
    """

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        pixels = tf.cast(image, tf.float32) / 127.5 - 1.0
        return tf.reshape(pixels, [-1]), tf.shape(image, out_type=tf.int32)

    flat, shapes = tf.map_fn(
        decode, check_formats(image_bytes, signature),
        fn_output_signature=(tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
                             tf.TensorSpec([3], tf.int32)),
    )
    shape = tf.concat([shapes, [[0, 0, channels]]], axis=0)[0]  # the first image's (or empty)
    same = tf.debugging.assert_equal(
        shapes, tf.broadcast_to(shape, tf.shape(shapes)),
        message=f"{signature}: all images of one request must have the same height and width; "
        "x = the [height, width, channels] of each image, y = those of the first",
        summarize=30,
    )
    with tf.control_dependencies([same]):
        batch = tf.shape(image_bytes, out_type=tf.int32)[:1]
        return tf.reshape(flat.flat_values, tf.concat([batch, shape], axis=0))


def _endpoints(generator, stride, name, bytes_name):
    """The float and the bytes endpoint functions of one generator (named in their errors)."""
    channels = int(generator.input_shape[-1])

    def translate(images):
        return {"images": generator(check_size(images, stride, name), training=False)}

    def translate_bytes(image_bytes):  # any photo size: padded to the stride, cropped back
        images = check_positive(decode_batch(image_bytes, channels, bytes_name), bytes_name)
        return {"image_png_bytes": encode_png_batch(run_padded(generator, images, stride))}

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
    archive = keras.export.ExportArchive()  # endpoints track the variables they use (once)
    if len(translators) == 1:
        (generator,) = translators.values()
        endpoints = _endpoints(generator, stride, "serving_default", "translate_bytes")
        (translate, images_spec), (translate_bytes, bytes_spec) = endpoints
        archive.add_endpoint("serving_default", translate, input_signature=[images_spec])
        archive.add_endpoint("translate_bytes", translate_bytes, input_signature=[bytes_spec])
        return archive
    for index, (name, generator) in enumerate(translators.items()):
        (translate, images_spec), (translate_bytes, bytes_spec) = _endpoints(
            generator, stride, name, f"{name}_bytes")
        archive.add_endpoint(name, translate, input_signature=[images_spec])
        archive.add_endpoint(f"{name}_bytes", translate_bytes, input_signature=[bytes_spec])
        if index == 0:
            archive.add_endpoint("serving_default", translate, input_signature=[images_spec])
    return archive
