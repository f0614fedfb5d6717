"""Serving signatures of the text-to-image GANs (GAN-CLS; StackGAN adds ``stage1_images``).

- ``generate_from_text`` (also ``serving_default``): ``text`` string [batch] and ``seed`` int64
  [batch] -> ``images`` float32 [batch, H, W, 3] in [-1, 1] and ``images_png_bytes`` string
  [batch] (StackGAN: also ``stage1_images`` and ``stage1_images_png_bytes``). The noise of a seed comes from TF's stateless RNG (``latent_from_seeds``), so a
  (caption, seed) pair gives the same image in every process and server.
- ``generate_from_text_default_seed``: ``text`` only, seed 0 for every caption. TF Serving
  requires every input of a signature in each request, so the optional seed is a second
  signature rather than a missing input.

Bad captions are refused inside the graph (``TextEncoder.check_captions``, plain TF ops), so TF
Serving and ``python -m export.serve`` answer INVALID_ARGUMENT / 400 naming the problem and the
batch indices: an empty caption, a caption with no word of the encoder's vocabulary, a caption
longer than ``max_words`` words, and ``text`` and ``seed`` batches of different sizes. Unknown
words beside known ones are ignored (the out-of-vocabulary token). A non-string ``text`` fails
the server's conversion to ``tf.string`` (INVALID_ARGUMENT) before the model runs. The text
encoder's tokenisation (``TextVectorization``: a lowercase/punctuation regex, a whitespace split
and a static hash table) is in the graph: no py_function.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from export.saved_model import encode_png_batch, latent_from_seeds

SIGNATURES = ("generate_from_text", "generate_from_text_default_seed")


def text_to_image_archive(model):
    """An ``ExportArchive`` with the signatures above for a text-to-image zoo model.

    ``model`` exposes ``text_encoder`` (a ``zoo.text_encoder.TextEncoder``), ``latent_dim`` and
    ``generate_outputs(text, z) -> {"images": ..., **extra}`` (``gan_cls.TextToImageGAN``).
    """
    encoder, latent_dim = model.text_encoder, model.latent_dim
    archive = keras.export.ExportArchive()
    archive.track(encoder.vectorize)  # its vocabulary lookup table (a resource, not a variable)

    def generate_from_text(text, seed):
        text = encoder.check_captions(text, SIGNATURES[0])
        same = tf.debugging.assert_equal(
            tf.shape(text), tf.shape(seed),
            message=f"{SIGNATURES[0]}: text and seed must have the same batch size")
        with tf.control_dependencies([same]):
            z = latent_from_seeds(seed, latent_dim, "normal")
        outputs = dict(model.generate_outputs(text, z, training=False))
        for key in list(outputs):  # images_png_bytes (and StackGAN's stage1_images_png_bytes)
            outputs[f"{key}_png_bytes"] = encode_png_batch(outputs[key])
        return outputs

    def generate_from_text_default_seed(text):
        return generate_from_text(text, tf.zeros(tf.shape(text), tf.int64))

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
    for name in (SIGNATURES[0], "serving_default"):
        archive.add_endpoint(name, generate_from_text, input_signature=[text_spec, seed_spec])
    archive.add_endpoint(SIGNATURES[1], generate_from_text_default_seed, input_signature=[text_spec])
    return archive
