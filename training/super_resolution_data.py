"""Data for 4x super-resolution (SRResNet, SRGAN): ``(LR, HR)`` pairs, both float32 in [-1, 1].

LR is the bicubic 4x downscale of HR (Ledig et al. 2017, sec. 3.1: "obtained the LR images by
downsampling the HR images using bicubic kernel with downsampling factor r = 4"):
``tf.image.resize(..., "bicubic", antialias=True)`` (Keys a = -0.5 with the kernel widened by
the scale, as MATLAB's ``imresize``), rounded to uint8 levels as a stored LR image would be.

Data sets (names for ``python -m training.train srresnet --dataset NAME``):

- ``photos``: the real photos ``training.image_pairs`` reads offline (Debian ``opencv-doc``,
  scikit-image's bundled images) at their native size. Training: random HR crops with random
  left-right flips, each photo drawn in proportion to its area. Held out (``HELD_OUT``, never
  cropped for training): Set14's baboon (opencv-doc's ``baboon.jpg``) and the photos pix2pix
  holds out; evaluation uses them whole (``whole_photos``), validation uses their tiles.
- ``div2k``: DIV2K (Agustsson & Timofte 2017, 800 train / 100 validation 2K photos) through tfds
  ``div2k/bicubic_x4``, which ships its own bicubic LR images; needs internet to download.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training import image_pairs

SCALE = 4
HELD_OUT = ("opencv/baboon.jpg",) + tuple(image_pairs.HELD_OUT)
DATASETS = ("photos", "div2k")
DIV2K_TRAIN_IMAGES = 800
SPLITS = ("train", "test")


def photo_names(split="train"):
    """The photos of ``split``: ``test`` is ``HELD_OUT``; ``train`` every other photo of
    ``training.image_pairs`` (so baboon, a pix2pix training photo, is not one here)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if split == "test":
        return list(HELD_OUT)
    names = image_pairs.photo_names("train") + image_pairs.photo_names("test")
    return [name for name in names if name not in HELD_OUT]


def modcrop(image, scale=SCALE):
    """``image`` cropped (bottom and right) to a height and width that are multiples of ``scale``."""
    height, width = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:height, :width]


def hr_photo(name):
    """The whole HR photo ``name`` as uint8 ``(H, W, 3)``, H and W multiples of 4 (modcrop)."""
    return modcrop(image_pairs.read_photo(name))


def downscale(hr_images, scale=SCALE):
    """Bicubic 1/``scale`` downscale of uint8-valued images (float 0-255 or uint8, ``(..., H, W, 3)``),
    rounded to uint8 levels; returned as float32 0-255."""
    hr = tf.cast(hr_images, tf.float32)
    size = tf.shape(hr)[-3:-1] // scale
    lr = tf.image.resize(hr, size, method="bicubic", antialias=True)
    return tf.clip_by_value(tf.round(lr), 0.0, 255.0)


def upscale_bicubic(lr_images, scale=SCALE):
    """The bicubic baseline: ``scale``x bicubic upscale of images in [-1, 1], clipped to [-1, 1]."""
    size = tf.shape(lr_images)[-3:-1] * scale
    return tf.clip_by_value(tf.image.resize(lr_images, size, method="bicubic"), -1.0, 1.0)


def to_unit_range(images):
    """0-255 values -> float32 [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def pair_from_hr(hr):
    """``(LR, HR)`` in [-1, 1] from an HR uint8 image or crop (H, W multiples of 4)."""
    return to_unit_range(downscale(hr)), to_unit_range(hr)


def _check_crop(crop_size):
    if crop_size < SCALE or crop_size % SCALE:
        raise ValueError(f"the HR crop size must be a positive multiple of {SCALE}, got {crop_size}.")


def photo_pairs(split="train", crop_size=96, batch_size=16, seed=None, repeat=False,
                shuffle=None, drop_remainder=False):
    """Batches ``(lr, hr)``: ``(B, crop/4, crop/4, 3)`` and ``(B, crop, crop, 3)`` in [-1, 1].

    ``train``: random flipped HR crops (an epoch, unless ``repeat``, is as many crops as the
    training photos have tiles); ``test``: every non-overlapping tile of the held-out photos,
    in a fixed order unless ``shuffle``.
    """
    _check_crop(crop_size)
    photos = [hr_photo(name) for name in photo_names(split)]
    count = sum(len(image_pairs.tiles(photo, crop_size)) for photo in photos)
    if split == "train":
        dataset = image_pairs.random_crops(photos, crop_size, seed)
        if not repeat:
            dataset = dataset.take(count)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(
            np.stack([tile for photo in photos for tile in image_pairs.tiles(photo, crop_size)]))
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
    dataset = dataset.map(pair_from_hr, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def num_photo_examples(split, crop_size):
    """Non-overlapping HR tiles of ``crop_size`` in the photos of ``split`` (one epoch)."""
    _check_crop(crop_size)
    return sum(len(image_pairs.tiles(hr_photo(name), crop_size)) for name in photo_names(split))


def whole_photos(split="test"):
    """``[(name, HR uint8 (H, W, 3))]``: the whole held-out photos the evaluation super-resolves."""
    return [(name, hr_photo(name)) for name in photo_names(split)]


# --- DIV2K through tfds (internet) ------------------------------------------------------------


def _aligned_crop(lr, hr, crop_size, seed):
    """A random ``crop_size`` HR crop and the LR crop it comes from (offsets multiples of 4)."""
    lr_size = crop_size // SCALE
    limits = tf.minimum(tf.shape(lr)[:2], tf.shape(hr)[:2] // SCALE) - lr_size + 1  # DIV2K: LR = HR / 4
    top = tf.random.stateless_uniform([], seed[0], 0, limits[0], dtype=tf.int32)
    left = tf.random.stateless_uniform([], seed[1], 0, limits[1], dtype=tf.int32)
    lr = lr[top:top + lr_size, left:left + lr_size]
    hr = hr[SCALE * top:SCALE * (top + lr_size), SCALE * left:SCALE * (left + lr_size)]
    return to_unit_range(lr), to_unit_range(hr)


def div2k(split="train", crop_size=96, batch_size=16, data_dir=None, download=True, seed=None,
          repeat=False):
    """DIV2K's bicubic x4 track (tfds ``div2k/bicubic_x4``): batches of aligned random crops
    ``(lr, hr)`` in [-1, 1], one crop per photo per epoch (``test`` = DIV2K's validation split)."""
    import tensorflow_datasets as tfds

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    _check_crop(crop_size)
    photos = tfds.load("div2k/bicubic_x4", split="train" if split == "train" else "validation",
                       data_dir=data_dir, download=download, shuffle_files=split == "train")
    if split == "train":
        photos = photos.shuffle(64, seed=seed)
    if repeat:
        photos = photos.repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(4).map(lambda s: tf.reshape(s, (2, 2)))
    dataset = tf.data.Dataset.zip(photos, seeds).map(
        lambda example, s: _aligned_crop(example["lr"], example["hr"], crop_size, s),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=split == "train").prefetch(tf.data.AUTOTUNE)


def load(dataset, split, batch_size, crop_size, seed=None, repeat=False, data_dir=None):
    """The pairs of data set ``dataset`` (``DATASETS``) for ``training.train``."""
    if dataset == "photos":
        return photo_pairs(split, crop_size, batch_size, seed=seed, repeat=repeat,
                           drop_remainder=split == "train")
    if dataset == "div2k":
        return div2k(split, crop_size, batch_size, data_dir=data_dir, seed=seed, repeat=repeat)
    raise ValueError(f"unknown super-resolution data set {dataset!r}; choose one of {list(DATASETS)}.")


def num_examples(dataset, split, crop_size):
    if dataset == "div2k":
        return DIV2K_TRAIN_IMAGES if split == "train" else 100
    return num_photo_examples(split, crop_size)
