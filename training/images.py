"""Sample grids: tile a batch of images in [-1, 1] into one uint8 image and write it as PNG."""

import math

import numpy as np
import tensorflow as tf

from training.files import atomic_write_bytes


def to_uint8(images):
    """Map images from [-1, 1] to uint8 [0, 255] (clipping, rounding)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, columns=None, padding=2):
    """Tile ``(N, H, W, C)`` images in [-1, 1] into a ``(rows*H', columns*W', C)`` uint8 grid."""
    images = to_uint8(images)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
        255,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_grid(path, images, columns=None):
    """Write a PNG sample grid atomically; returns the uint8 grid."""
    grid = make_grid(images, columns)
    atomic_write_bytes(path, tf.io.encode_png(grid).numpy())
    return grid
