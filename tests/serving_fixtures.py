"""Small SavedModels in TF Serving's layout for serving tests and benchmarks.

``make_toy_saved_model`` has the signatures of the project's GAN exports (``serving_default``:
``z`` [batch, 4] -> ``images`` [batch, 2, 2, 1]; ``generate_from_seed``: ``seed`` [batch] ->
``images`` and ``images_png_bytes``); its weights depend on the version, so versions give
different outputs. ``make_bytes_saved_model`` takes a string input, to exercise ``{"b64": ...}``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

TOY_LATENT_DIM = 4
TOY_IMAGE_SHAPE = (2, 2, 1)


def _write_atomically(archive: keras.export.ExportArchive, model_dir, version) -> Path:
    """Write the archive as ``model_dir/VERSION`` via a temporary directory and a rename."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / str(int(version))
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    tmp = model_dir / f".tmp-{int(version)}-{uuid.uuid4().hex[:8]}"
    try:
        archive.write_out(str(tmp), verbose=False)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def toy_generator(version: int) -> keras.Model:
    """tanh(Dense(z)) reshaped to 2x2x1 images; weights seeded by the version."""
    z = keras.Input((TOY_LATENT_DIM,), name="z")
    dense = keras.layers.Dense(
        4, activation="tanh",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=int(version)),
        bias_initializer=keras.initializers.Constant(0.1 * int(version)))
    images = keras.layers.Reshape(TOY_IMAGE_SHAPE)(dense(z))
    return keras.Model(z, images, name=f"toy_generator_v{int(version)}")


def make_toy_saved_model(model_dir, version) -> Path:
    """Write the toy generator as ``model_dir/VERSION`` (atomically); returns that path."""
    generator = toy_generator(version)
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serving_default(z):
        return {"images": generator(z, training=False)}

    def generate_from_seed(seed):
        def latent(one_seed):
            return tf.random.stateless_normal(
                [TOY_LATENT_DIM], tf.stack([one_seed, tf.constant(0, tf.int64)]))

        z = tf.map_fn(latent, seed, fn_output_signature=tf.TensorSpec([TOY_LATENT_DIM]))
        images = generator(z, training=False)
        pixels = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)
        png = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"images": images, "images_png_bytes": png}

    archive.add_endpoint("serving_default", serving_default, input_signature=[
        tf.TensorSpec([None, TOY_LATENT_DIM], tf.float32, name="z")])
    archive.add_endpoint("generate_from_seed", generate_from_seed, input_signature=[
        tf.TensorSpec([None], tf.int64, name="seed")])
    return _write_atomically(archive, model_dir, version)


def make_bytes_saved_model(model_dir, version=1) -> Path:
    """``serving_default``: ``payload`` string [batch] -> ``length`` int32 and ``echo_bytes``."""

    class Echo(tf.Module):
        pass

    archive = keras.export.ExportArchive()
    archive.track(Echo())

    def serving_default(payload):
        return {"length": tf.strings.length(payload), "echo_bytes": tf.identity(payload)}

    archive.add_endpoint("serving_default", serving_default, input_signature=[
        tf.TensorSpec([None], tf.string, name="payload")])
    return _write_atomically(archive, model_dir, version)


def make_slow_saved_model(model_dir, version=1) -> Path:
    """``serving_default``: ``steps`` int32 [batch] -> ``y`` float32 [batch]: ``steps[0]``
    rounds of a 128x128 matmul (plain TF ops), to exercise timeouts and deadlines."""

    class Slow(tf.Module):
        pass

    archive = keras.export.ExportArchive()
    archive.track(Slow())

    def serving_default(steps):
        def body(i, m):
            return i + 1, tf.tanh(tf.matmul(m, m) / 128.0)

        _, m = tf.while_loop(lambda i, m: i < steps[0], body,
                             (tf.constant(0), tf.ones([128, 128]) * 0.5))
        return {"y": tf.fill(tf.shape(steps), m[0, 0])}

    archive.add_endpoint("serving_default", serving_default, input_signature=[
        tf.TensorSpec([None], tf.int32, name="steps")])
    return _write_atomically(archive, model_dir, version)
