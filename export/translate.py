"""Translate or upscale image files with an exported pix2pix, CycleGAN, SRResNet or SRGAN: the
released models, without Keras.

    python -m export.translate saved_models/pix2pix_grey_to_colour photo.jpg --out translated/
    python -m export.translate saved_models/cyclegan_sneakers_and_boots/1 boot.png --direction b_to_a
    python -m export.translate saved_models/srgan_photos photo.jpg --out upscaled/    # 4x

MODEL is a SavedModel version directory or a model directory (its newest version). Each input
PNG or JPEG goes through the model's ``*_bytes`` signature (``export/translation.py``), exactly
what TF Serving would run (``translate_bytes``, ``a_to_b_bytes``/``b_to_a_bytes`` or
``upscale_bytes``), and is written as ``OUT/<name>.png``: any height and width (padded for the
generator and cropped back inside the model), at the input's size or 4x for super-resolution.
"""

from __future__ import annotations

import argparse
import os
import sys

from pathlib import Path

import tensorflow as tf

from export.serving.errors import tf_error_message
from export.serving.layout import find_versions
from training.files import atomic_write_bytes


def version_directory(path):
    """``path`` if it holds a SavedModel, else the newest complete version under it."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = find_versions(Path(path))
    if not versions:
        raise FileNotFoundError(f"No SavedModel at {path}: pass MODEL_DIR/VERSION or a model directory.")
    return str(versions[max(versions)])


def bytes_signature(loaded, direction=None):
    """The encoded-image signature of a translation or super-resolution SavedModel (``direction`` for CycleGAN)."""
    names = sorted(name for name, function in loaded.signatures.items()  # one image in, one out
                   if name.endswith("_bytes") and set(function.structured_input_signature[1]) == {"image_bytes"})
    if not names:
        raise ValueError(f"not an image-to-image or super-resolution export: its signatures are {sorted(loaded.signatures)}.")
    if direction is None:
        if len(names) > 1:
            choices = ", ".join(n.removesuffix("_bytes") for n in names)
            raise ValueError(f"this model translates both ways: pass --direction ({choices}).")
        return loaded.signatures[names[0]]
    name = f"{direction}_bytes"
    if name not in names:
        raise ValueError(f"unknown direction {direction!r}; this model has "
                         f"{', '.join(n.removesuffix('_bytes') for n in names)}.")
    return loaded.signatures[name]


def translate_files(model, paths, out_dir, direction=None):
    """Translate each image file into ``out_dir/<name>.png``; returns the written paths."""
    signature = bytes_signature(tf.saved_model.load(version_directory(model)), direction)
    written = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            (png,) = signature(image_bytes=tf.constant([data]))["image_png_bytes"].numpy()
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{path}: {tf_error_message(error.message)}") from None
        target = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
        atomic_write_bytes(target, png)
        written.append(target)
    return written


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m export.translate",
        description="Translate (pix2pix, CycleGAN) or 4x upscale (SRResNet, SRGAN) PNG/JPEG files with an exported SavedModel.",
    )
    parser.add_argument("model", help="SavedModel version directory, or a model directory (newest version)")
    parser.add_argument("images", nargs="+", help="PNG or JPEG files")
    parser.add_argument("--out", default="translated", help="output directory")
    parser.add_argument("--direction", default=None, help="CycleGAN: a_to_b or b_to_a")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        for path in translate_files(args.model, args.images, args.out, args.direction):
            print(path)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
