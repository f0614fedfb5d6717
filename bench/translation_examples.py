"""Whole held-out photos through a released grey->colour pix2pix (trained on 64px crops only).

    python bench/translation_examples.py [saved_models/pix2pix_grey_to_colour/1]

Writes ``docs/images/pix2pix_grey_to_colour_<photo>.png``: input, output, original, each photo
cut to a multiple of the generator's stride (64), through the SavedModel's ``serving_default``.
"""

import sys

import numpy as np
import tensorflow as tf

from training import image_pairs
from training.images import save_grid


def main(model_dir="saved_models/pix2pix_grey_to_colour/1", stride=64):
    translate = tf.saved_model.load(model_dir).signatures["serving_default"]
    for name in ("opencv/fruits.jpg", "skimage/chelsea"):
        grey, photo = image_pairs.photo_pair("grey_to_colour", name)
        height, width = grey.shape[0] // stride * stride, grey.shape[1] // stride * stride
        inputs = grey[None, :height, :width].astype(np.float32) / 127.5 - 1
        output = translate(images=tf.constant(inputs))["images"].numpy()[0]
        target = photo[:height, :width].astype(np.float32) / 127.5 - 1
        path = f"docs/images/pix2pix_grey_to_colour_{name.split('/')[1].split('.')[0]}.png"
        save_grid(path, np.stack([np.repeat(inputs[0], 3, axis=-1), output, target]), columns=3)
        print(path)


if __name__ == "__main__":
    main(*sys.argv[1:])
