"""Real image data for the image-to-image GANs: paired crops for pix2pix, unpaired domains for CycleGAN.

Every function returns a ``tf.data.Dataset`` of float32 images in [-1, 1].

**Paired (pix2pix)**, from real photos installed offline: the Debian package ``opencv-doc``
(``/usr/share/doc/opencv-doc/examples/data/``) and the images bundled in the scikit-image wheel.
Two tasks built from each photo, in the spirit of the paper's automatically paired data sets:

- ``edges_to_photo``: Canny edges (black lines on white) -> photo, as in edges2shoes/handbags
  (Isola et al. 2017, sec. 4, which used HED edges; Canny is the classic detector, Canny 1986);
- ``grey_to_colour``: luminance -> RGB (the paper's colourisation task, sec. 4.6).

Inputs are computed on the whole (resized) photo and then cut with it, so crops see no border
artefacts. Training pairs are random crops with random left-right flips (the paper's jitter,
sec. 6.2); evaluation pairs are the non-overlapping tiles of whole photos held out by name
(``HELD_OUT``), so no test pixel is ever seen in training.

**Unpaired (CycleGAN)**: ``sneakers_and_boots`` (Fashion-MNIST sneakers, label 7, as domain A and
ankle boots, label 9, as domain B; 6,000 of each in the training split), from
``training.data.load_images``; ``cycle_gan_tfds`` is the paper's data (``tfds`` ``cycle_gan/*``,
e.g. horse2zebra), which needs internet to download.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import numpy as np
import tensorflow as tf

OPENCV_DATA_DIR = "/usr/share/doc/opencv-doc/examples/data"

# Colour photographs only (no drawings, renders, text or calibration boards). Of each
# near-duplicate pair (stereo views, image sequences) only one image is listed, so the
# held-out images share no scene with the training ones.
OPENCV_PHOTOS = (
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg",
    "butterfly.jpg", "ela_original.jpg", "fruits.jpg", "graf1.png", "home.jpg", "left.jpg",
    "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png",
    "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg",
)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket", "stereo_motorcycle")

# The fixed test split: whole photos, never cropped for training.
HELD_OUT = ("opencv/fruits.jpg", "opencv/home.jpg", "opencv/squirrel_cls.jpg", "skimage/chelsea")

SPLITS = ("train", "test")


class PhotoSourceUnavailable(RuntimeError):
    """The photos' package is not installed on this machine."""


def photo_names(split="train"):
    """Names (``opencv/<file>`` or ``skimage/<name>``) of the photos of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    names = [f"opencv/{f}" for f in OPENCV_PHOTOS] + [f"skimage/{n}" for n in SKIMAGE_PHOTOS]
    if split == "test":
        return list(HELD_OUT)
    return [name for name in names if name not in HELD_OUT]


@functools.lru_cache(maxsize=None)
def read_photo(name):
    """The RGB photo ``name`` (``opencv/<file>`` or ``skimage/<name>``) as uint8 ``(H, W, 3)`` at its
    native size (read-only; the super-resolution data uses it whole)."""
    photo = _read_photo(name)
    photo.setflags(write=False)
    return photo


def _read_photo(name):
    source, _, item = name.partition("/")
    if source == "opencv":
        path = os.path.join(OPENCV_DATA_DIR, item)
        if not os.path.isfile(path):
            raise PhotoSourceUnavailable(
                f"{path} not found; install the Debian package with `sudo apt-get install opencv-doc`."
            )
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    if source == "skimage":
        try:
            import skimage.data
        except ImportError:
            raise PhotoSourceUnavailable(
                "scikit-image is not installed; `pip install scikit-image` (its photos are bundled)."
            ) from None
        image = getattr(skimage.data, item)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disp)
        return np.asarray(image[..., :3], dtype=np.uint8)
    raise ValueError(f"unknown photo {name!r}: expected 'opencv/<file>' or 'skimage/<name>'.")


@functools.lru_cache(maxsize=None)
def load_photo(name, short_side=256):
    """The RGB photo ``name`` as uint8 ``(H, W, 3)``, resized (Lanczos) to a shorter side of ``short_side``."""
    from PIL import Image

    photo = read_photo(name)
    height, width = photo.shape[:2]
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    resized = np.asarray(Image.fromarray(photo).resize(size, Image.LANCZOS))
    resized.setflags(write=False)
    return resized


def grey_from_photo(photo):
    """Luminance ``Y = 0.2125 R + 0.7154 G + 0.0721 B`` (scikit-image's rgb2gray) as uint8 ``(H, W, 1)``."""
    weights = np.array([0.2125, 0.7154, 0.0721])
    return np.round(photo.astype(np.float64) @ weights).clip(0, 255).astype(np.uint8)[..., None]


def edges_from_photo(photo, sigma=2.0):
    """Canny edges of the photo's luminance as uint8 ``(H, W, 1)``: 0 on edges, 255 elsewhere.

    ``sigma`` is the Gaussian smoothing before the gradient (scikit-image's ``feature.canny``;
    thresholds at its defaults, 10% and 20% of the dtype range).
    """
    from skimage.feature import canny

    edges = canny(grey_from_photo(photo)[..., 0].astype(np.float64) / 255.0, sigma=sigma)
    return np.where(edges, 0, 255).astype(np.uint8)[..., None]


TASKS = {"edges_to_photo": edges_from_photo, "grey_to_colour": grey_from_photo}


def photo_pair(task, name, short_side=256):
    """``(input, photo)`` uint8 arrays of the whole photo ``name`` for ``task``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}.")
    photo = load_photo(name, short_side)
    return TASKS[task](photo), photo


def _to_unit_range(images):
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _split_pair(stacked, input_channels):
    return _to_unit_range(stacked[..., :input_channels]), _to_unit_range(stacked[..., input_channels:])


def tiles(stacked, crop_size):
    """Non-overlapping ``crop_size`` tiles of an ``(H, W, C)`` array, row by row."""
    height, width = stacked.shape[:2]
    return [
        stacked[top : top + crop_size, left : left + crop_size]
        for top in range(0, height - crop_size + 1, crop_size)
        for left in range(0, width - crop_size + 1, crop_size)
    ]


def photo_pairs(
    task, split="train", crop_size=64, batch_size=1, short_side=256, crops=None, shuffle=True,
    seed=None, repeat=False, drop_remainder=False,
):
    """Batches ``(inputs, photos)`` of ``task`` pairs, float32 in [-1, 1].

    ``inputs`` is ``(B, crop_size, crop_size, 1)``, ``photos`` ``(B, crop_size, crop_size, 3)``.
    ``crops="random"`` (default for ``"train"``): random crops with random left-right flips,
    photos drawn in proportion to their area; an epoch is as many crops as the photos have tiles.
    ``crops="tiles"`` (default for ``"test"``): every non-overlapping tile once, in a fixed order
    (then shuffled if ``shuffle``). Photos are first resized to a shorter side of ``short_side``.
    """
    crops = crops or ("random" if split == "train" else "tiles")
    if crops not in ("random", "tiles"):
        raise ValueError(f"crops must be 'random' or 'tiles', got {crops!r}.")
    if crop_size > short_side:
        raise ValueError(f"crop_size {crop_size} exceeds short_side {short_side}.")
    stacked = [np.concatenate(photo_pair(task, name, short_side), axis=-1) for name in photo_names(split)]
    input_channels = stacked[0].shape[-1] - 3
    every_tile = [tile for image in stacked for tile in tiles(image, crop_size)]
    if crops == "tiles":
        dataset = tf.data.Dataset.from_tensor_slices(np.stack(every_tile))
        if shuffle:
            dataset = dataset.shuffle(len(every_tile), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
    else:
        dataset = random_crops(stacked, crop_size, seed)
        if not repeat:
            dataset = dataset.take(len(every_tile))
    dataset = dataset.map(lambda pair: _split_pair(pair, input_channels), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def random_crops(stacked, crop_size, seed):
    """An endless stream of random left-right flipped ``crop_size`` crops of the ``(H, W, C)``
    arrays ``stacked`` (e.g. input and photo stacked along channels), each drawn in proportion
    to its area."""
    areas = np.array([image.shape[0] * image.shape[1] for image in stacked], dtype=np.float64)
    photos = [tf.data.Dataset.from_tensors(image).repeat() for image in stacked]
    chosen = tf.data.Dataset.sample_from_datasets(photos, weights=list(areas / areas.sum()), seed=seed)
    channels = stacked[0].shape[-1]

    def crop(image, seeds):
        image = tf.image.stateless_random_crop(image, (crop_size, crop_size, channels), seed=seeds[0])
        return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])

    random_seeds = tf.data.Dataset.random(seed=seed).batch(4).map(lambda s: tf.reshape(s, (2, 2)))
    return tf.data.Dataset.zip(chosen, random_seeds).map(crop, num_parallel_calls=tf.data.AUTOTUNE)


def edges_to_photo(split="train", **kwargs):
    """Canny edges -> photo pairs (see ``photo_pairs`` for the arguments)."""
    return photo_pairs("edges_to_photo", split, **kwargs)


def grey_to_colour(split="train", **kwargs):
    """Luminance -> colour photo pairs (see ``photo_pairs`` for the arguments)."""
    return photo_pairs("grey_to_colour", split, **kwargs)


# --- Unpaired domains -----------------------------------------------------------------------------

SNEAKER, ANKLE_BOOT = 7, 9  # Fashion-MNIST labels


def fashion_mnist_class(label, split="train", image_size=32, data_dir=None, shuffle=True, seed=None):
    """Unbatched Fashion-MNIST images of one class, ``(image_size, image_size, 1)`` in [-1, 1].

    The 28x28 images are padded with background (-1) to 32x32, so every stride-2 step of a
    generator halves them exactly, then resized (bilinear) if ``image_size`` is not 32.
    """
    from training.data import load_images

    dataset = load_images(
        "fashion_mnist", split=split, batch_size=1024, data_dir=data_dir, shuffle=shuffle, seed=seed,
        drop_remainder=False, with_labels=True,
    ).unbatch()
    dataset = dataset.filter(lambda image, labels: tf.equal(labels, label))

    def resize(image, _):
        image = tf.pad(image, [[2, 2], [2, 2], [0, 0]], constant_values=-1.0)
        if image_size != 32:
            image = tf.image.resize(image, (image_size, image_size))
        return image

    return dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)


def sneakers_and_boots(
    split="train", batch_size=1, image_size=32, data_dir=None, shuffle=True, seed=None, repeat=False,
):
    """Unpaired batches ``(sneakers, ankle_boots)``, each ``(B, image_size, image_size, 1)``.

    The two classes are read in independent orders (seeds ``seed`` and ``seed + 1``), so the
    pairs are random. One epoch is 6,000 pairs for ``"train"`` and 1,000 for ``"test"``.
    """
    second_seed = None if seed is None else seed + 1
    domain_a = fashion_mnist_class(SNEAKER, split, image_size, data_dir, shuffle, seed)
    domain_b = fashion_mnist_class(ANKLE_BOOT, split, image_size, data_dir, shuffle, second_seed)
    if repeat:
        domain_a, domain_b = domain_a.repeat(), domain_b.repeat()
    dataset = tf.data.Dataset.zip(domain_a, domain_b)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _cycle_gan_preprocess(image, training, image_size, load_size, seed):
    """CycleGAN's preprocessing: resize to ``load_size``, random crop and flip (training) or
    resize to ``image_size`` (test); scaled to [-1, 1]."""
    image = tf.cast(image, tf.float32)
    if training:
        image = tf.image.resize(image, (load_size, load_size), method="bicubic")
        image = tf.image.stateless_random_crop(image, (image_size, image_size, 3), seed=seed[0])
        image = tf.image.stateless_random_flip_left_right(image, seed=seed[1])
    else:
        image = tf.image.resize(image, (image_size, image_size), method="bicubic")
    return tf.clip_by_value(image, 0.0, 255.0) / 127.5 - 1.0


def cycle_gan_tfds(
    name="horse2zebra", split="train", batch_size=1, image_size=256, load_size=286, data_dir=None,
    download=True, shuffle=True, seed=None, repeat=False,
):
    """The CycleGAN paper's unpaired data (tfds ``cycle_gan/<name>``): batches ``(images_a, images_b)``.

    Domain A is the ``trainA``/``testA`` split, B is ``trainB``/``testB``. Training images are
    resized to ``load_size`` then randomly cropped to ``image_size`` and flipped, as in the
    authors' code (286 -> 256). The shorter domain is repeated so an epoch is as long as the
    longer one (the authors' convention); with ``repeat`` the stream is endless.
    """
    import tensorflow_datasets as tfds

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    domain_a, domain_b = tfds.load(
        f"cycle_gan/{name}", split=[f"{split}A", f"{split}B"], data_dir=data_dir, download=download,
        as_supervised=True, shuffle_files=shuffle,
    )
    training = split == "train"
    sizes = [int(d.cardinality()) for d in (domain_a, domain_b)]

    def prepare(dataset, offset):
        images = dataset.map(lambda image, label: image)
        if shuffle:
            images = images.shuffle(1000, seed=None if seed is None else seed + offset)
        images = images.repeat()
        seeds = tf.data.Dataset.random(seed=None if seed is None else seed + 2 + offset)
        seeds = seeds.batch(4).map(lambda s: tf.reshape(s, (2, 2)))
        return tf.data.Dataset.zip(images, seeds).map(
            lambda image, s: _cycle_gan_preprocess(image, training, image_size, load_size, s),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    dataset = tf.data.Dataset.zip(prepare(domain_a, 0), prepare(domain_b, 1))
    if not repeat and min(sizes) > 0:
        dataset = dataset.take(max(sizes))
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# --- The translation data sets, by name (what ``training.train`` takes for pix2pix and CycleGAN) --


@dataclasses.dataclass(frozen=True)
class TranslationDataset:
    """A named source of ``(a, b)`` batches for the translation GANs.

    ``paired``: ``b[i]`` is the target of ``a[i]`` (pix2pix) or an unrelated image (CycleGAN).
    ``load(split, batch_size, image_size, seed, repeat, data_dir)`` returns the batches, square
    images of side ``image_size``; ``num_examples(split, image_size)`` is the length of one epoch.
    """

    name: str
    paired: bool
    input_channels: int
    output_channels: int
    image_size: int
    load: Callable[..., tf.data.Dataset]
    num_examples: Callable[[str, int], int]


def tile_count(split, crop_size, short_side=256):
    """Non-overlapping ``crop_size`` tiles in the photos of ``split`` (one epoch of pairs)."""
    return sum(len(tiles(load_photo(name, short_side), crop_size)) for name in photo_names(split))


def _paired(task):
    def load(split, batch_size, image_size, seed=None, repeat=False, data_dir=None):
        training = split == "train"
        return photo_pairs(task, split, crop_size=image_size, batch_size=batch_size, seed=seed,
                           shuffle=training, repeat=repeat, drop_remainder=training)

    return load


def _sneakers_and_boots(split, batch_size, image_size, seed=None, repeat=False, data_dir=None):
    return sneakers_and_boots(split, batch_size, image_size, data_dir=data_dir,
                              shuffle=split == "train", seed=seed, repeat=repeat)


TRANSLATION_DATASETS = {
    dataset.name: dataset
    for dataset in (
        TranslationDataset("edges_to_photo", True, 1, 3, 64, _paired("edges_to_photo"), tile_count),
        TranslationDataset("grey_to_colour", True, 1, 3, 64, _paired("grey_to_colour"), tile_count),
        TranslationDataset("sneakers_and_boots", False, 1, 1, 32, _sneakers_and_boots,
                           lambda split, size: 6000 if split == "train" else 1000),
    )
}


def translation_dataset_names(paired):
    """Names of the paired (pix2pix) or unpaired (CycleGAN) translation data sets."""
    return sorted(name for name, dataset in TRANSLATION_DATASETS.items() if dataset.paired == paired)


def get_translation_dataset(name):
    """The ``TranslationDataset`` called ``name``; ``ValueError`` lists the known names."""
    try:
        return TRANSLATION_DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown translation dataset {name!r}; known: {', '.join(sorted(TRANSLATION_DATASETS))}"
        ) from None
