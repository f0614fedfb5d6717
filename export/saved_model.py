"""Export a trained GAN as a SavedModel in TF Serving's layout ``BASE/NAME/VERSION/``.

    python -m export.saved_model RUN_DIR_OR_KERAS_FILE --name NAME [--version N] [--base saved_models]

The export is a traced graph (``keras.export.ExportArchive``) with named signatures and a
dynamic batch dimension; it loads with plain TensorFlow (no project code) and is served
unchanged by TF Serving and by ``python -m export.serve``. The signatures are the model kind's
(``zoo.kinds``: e.g. ``generate_from_seed`` for unconditional GANs, ``translate_bytes`` for
pix2pix); ``*_bytes`` outputs are PNG strings, which TF Serving's REST API returns
base64-encoded. This module keeps the pieces every kind's signatures share.

The version directory is written under a temporary name and renamed into place, so a crash
never leaves a half-written version for a polling server to pick up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

import zoo  # noqa: F401  (registers the zoo's classes for load_model)
from export.model_card import write_model_card
from zoo.kinds import kind_of_model


class ExportError(ValueError):
    """Bad export input (missing model, taken version...): reported as one line by the CLI."""


def latent_from_seeds(seeds, latent_dim, distribution):
    """Per-example noise from int64 seeds with TF's stateless RNG (deterministic everywhere)."""

    def one(seed):
        pair = tf.stack([seed, tf.constant(0, tf.int64)])
        if distribution == "uniform":
            return tf.random.stateless_uniform([latent_dim], pair, minval=-1.0, maxval=1.0)
        return tf.random.stateless_normal([latent_dim], pair)

    return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([latent_dim], tf.float32))


def encode_png_batch(images):
    """Images in [-1, 1] -> one PNG string per image (uint8, rounded)."""
    pixels = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))


def archive_for(model):
    """The serving signatures of ``model``, as its kind of model defines them (``zoo.kinds``)."""
    return kind_of_model(model).archive(model)


def load_trained_model(path):
    """A run directory (its ``model.keras``), a ``.keras`` file or a registered preset's name
    (``zoo/presets.json``, loaded with ``zoo.from_preset``) -> the loaded model."""
    from zoo import presets

    if not os.path.exists(path) and path in presets.list_presets():
        return presets.from_preset(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise ExportError(f"No model at {path}: pass a run directory holding model.keras, a .keras "
                          f"file or a preset name ({', '.join(presets.list_presets())}).")
    return keras.saving.load_model(path)


def next_version(base, name):
    """One more than the highest numeric version under ``BASE/NAME`` (1 if none)."""
    directory = os.path.join(base, name)
    versions = [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
    return max(versions, default=0) + 1


def export_model(model, base, name, version=None, archive=None):
    """Write ``model`` to ``BASE/NAME/VERSION`` atomically; returns the version directory."""
    if not name or os.sep in name or name.startswith("."):
        raise ExportError(f"Invalid model name {name!r}: use a plain directory name like dcgan_fashion_mnist.")
    version = next_version(base, name) if version is None else int(version)
    if version < 1:
        raise ExportError(f"--version must be a positive integer, got {version}.")
    target = os.path.join(base, name, str(version))
    if os.path.exists(target):
        raise ExportError(f"{target} already exists; versions are immutable, pick another --version.")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    archive = archive or archive_for(model)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=os.path.dirname(target))
    try:
        archive.write_out(staging, verbose=False)
        os.rename(staging, target)  # atomic on one file system; fails if target appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m export.saved_model",
        description="Export a trained GAN as a SavedModel in TF Serving's layout BASE/NAME/VERSION.",
    )
    parser.add_argument("model_path", help="run directory (with model.keras) or a .keras file")
    parser.add_argument("--name", required=True, help="model name under BASE, e.g. dcgan_fashion_mnist")
    parser.add_argument("--version", type=int, default=None, help="default: highest existing + 1")
    parser.add_argument("--base", default="saved_models", help="model base directory")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        model = load_trained_model(args.model_path)
        target = export_model(model, args.base, args.name, args.version)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_dir = args.model_path if os.path.isdir(args.model_path) else os.path.dirname(args.model_path)
    card = write_model_card(args.base, args.name, run_dir, variant=model.name)
    print(f"Exported {args.model_path} to {target}; model card {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
