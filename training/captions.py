"""Captioned images for text-to-image GANs: a procedural scene set built offline, and CUB-200.

``shapes_captions`` (``python -m training.data prepare shapes_captions``) is a tfds builder of
64x64 RGB scenes, each one shape with four attributes and five captions:

- **shape** (circle, square, triangle, cross), **colour** (red, green, blue, yellow, purple),
  **size** (small, large) and **position** (a cell of a 3x3 grid);
- **detail at full resolution**: anti-aliased edges (drawn at 4x, box-downsampled), a dark
  outline, a lighting gradient across the shape, a fine stripe texture inside it and a textured,
  noisy background, so a 16x16 or 32x32 version of a scene lacks something a 64x64 one has;
- **five captions per image** from five templates with synonyms ("crimson disc", "big",
  "upper left") and changed word orders ("in the top left, a red circle that is small");
- **held-out combinations**: ``HELD_OUT_COMBINATIONS`` (shape, colour) pairs never occur in
  ``train`` (each shape and each colour does, separately); the ``novel`` split holds only them,
  as Reed et al. 2016's held-out categories measure zero-shot composition. ``test`` holds new
  scenes (and their captions) of the seen combinations.

Why procedural: no captioned image set is installable here, and captioned real items
(Fashion-MNIST) are 28x28 grey, with nothing for a second, high-resolution stage to add. A
rendered scene's caption is true by construction and every attribute is measurable by a
classifier trained on the renders (``training.attribute_oracle``). Precedents: captioned MNIST
(Mansimov et al. 2016), ShapeWorld (Kuhnle & Copestake 2017), Multi-MNIST / CLEVR in Hinz et
al. 2019. Every scene is a pure function of (split seed, index): the build is deterministic.

``load_cub_with_reed_captions`` is the real path for users with internet: tfds's
``caltech_birds2011`` images joined by file name with Reed et al. 2016's ``text_c10`` captions
(10 per image, a separate download from the authors' page, unpacked in ``captions_dir``).
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow_datasets as tfds
# tfds's lazy TensorFlow, as tfds's own builders import it: ``training.data`` registers this
# module's data set, and its command line answers (``list``, an unknown name) before TF loads.
from tensorflow_datasets.core.utils.lazy_imports_utils import tensorflow as tf
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
CAPTIONS_PER_IMAGE = 5
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
POSITIONS = tuple(f"{row}_{col}" for row in ("top", "middle", "bottom")
                  for col in ("left", "centre", "right"))
ATTRIBUTES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}

# (shape, colour) pairs that never occur in the train split (each part does, separately).
HELD_OUT_COMBINATIONS = (("circle", "green"), ("square", "yellow"), ("triangle", "blue"),
                         ("cross", "red"))

SPLITS = {"train": 20_000, "test": 2_000, "novel": 2_000}
SPLIT_SEEDS = {"train": 1, "test": 2, "novel": 3}

RGB = {"red": (205, 40, 35), "green": (40, 160, 60), "blue": (40, 80, 210),
       "yellow": (235, 205, 40), "purple": (140, 60, 170)}

SYNONYMS = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape", "wedge"),
    "cross": ("cross", "plus sign", "plus"),
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "navy", "azure"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet", "lilac"),
    "small": ("small", "tiny", "little"),
    "large": ("large", "big", "huge"),
}
ROW_WORDS = {"top": ("top", "upper"), "middle": ("middle", "centre"), "bottom": ("bottom", "lower")}
COL_WORDS = {"left": ("left",), "centre": ("centre", "middle"), "right": ("right",)}

TEMPLATES = (
    "a {size} {colour} {shape} {where}",
    "{where} , a {colour} {shape} that is {size}",
    "there is a {size} {shape} {where} and it is {colour}",
    "a {colour} {shape} , {size} , {where}",
    "the {shape} {where} is {colour} and {size}",
)


def position_phrases(position):
    """Phrases for a grid cell: "in the top left", "at the upper left", "in the centre"..."""
    row, col = position.split("_")
    if row == "middle" and col == "centre":
        return ("in the centre", "in the middle", "at the centre")
    if row == "middle":
        return (f"on the {col}", f"at the {col}", f"on the {col} side")
    if col == "centre":
        return tuple(f"at the {r}" for r in ROW_WORDS[row]) + (f"at the {row} centre",)
    return tuple(f"{p} the {r} {col}" for p in ("in", "at") for r in ROW_WORDS[row])


def caption(attributes, template, rng):
    """One caption of ``attributes`` (a dict of the four names) with random synonyms."""
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    text = TEMPLATES[template].format(
        shape=pick(SYNONYMS[attributes["shape"]]), colour=pick(SYNONYMS[attributes["colour"]]),
        size=pick(SYNONYMS[attributes["size"]]), where=pick(position_phrases(attributes["position"])),
    )
    return re.sub(r"\ba ([aeiou])", r"an \1", text.replace(" ,", ","))


def vocabulary():
    """Every word any caption can use, sorted (the text encoder's fixed vocabulary)."""
    words = set()
    for options in SYNONYMS.values():
        for option in options:
            words.update(option.split())
    for position in POSITIONS:
        for phrase in position_phrases(position):
            words.update(phrase.split())
    for template in TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{") and w != ",")
    return sorted(words | {"an"})


def is_held_out(shape, colour):
    return (shape, colour) in HELD_OUT_COMBINATIONS


def sample_attributes(split, rng):
    """Attributes of one scene of ``split``: seen combinations, or held-out ones for ``novel``."""
    while True:
        values = {name: options[rng.integers(len(options))] for name, options in ATTRIBUTES.items()}
        if is_held_out(values["shape"], values["colour"]) == (split == "novel"):
            return values


def _outline(shape, cx, cy, radius):
    """Polygon points (or an ellipse box) of ``shape`` centred at (cx, cy), in supersampled px."""
    if shape == "circle":
        return [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == "square":
        r = radius * 0.85
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - radius), (cx + radius * 0.95, cy + radius * 0.8),
                (cx - radius * 0.95, cy + radius * 0.8)]
    a, b = radius, radius * 0.36  # a cross: 12 corners
    return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b),
            (cx + b, cy + b), (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b),
            (cx - a, cy - b), (cx - b, cy - b)]


def _mask(shape, points, size, outline_width=0):
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse(points, fill=None if outline_width else 255,
                     outline=255 if outline_width else None, width=outline_width or 1)
    elif outline_width:
        draw.line(points + points[:1], fill=255, width=outline_width, joint="curve")
    else:
        draw.polygon(points, fill=255)
    small = mask.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0


def render(attributes, rng):
    """A 64x64x3 uint8 scene of ``attributes`` (jittered placement, textured, shaded)."""
    big = IMAGE_SIZE * SUPERSAMPLE
    cell = IMAGE_SIZE / 3
    row, col = (("top", "middle", "bottom").index(attributes["position"].split("_")[0]),
                ("left", "centre", "right").index(attributes["position"].split("_")[1]))
    radius = (5.5 if attributes["size"] == "small" else 9.5) * rng.uniform(0.9, 1.1)
    cx = (col + 0.5) * cell + rng.uniform(-1.5, 1.5)
    cy = (row + 0.5) * cell + rng.uniform(-1.5, 1.5)
    points = _outline(attributes["shape"], cx * SUPERSAMPLE, cy * SUPERSAMPLE, radius * SUPERSAMPLE)
    fill = _mask(attributes["shape"], points, big)
    edge = _mask(attributes["shape"], points, big, outline_width=SUPERSAMPLE + 2)

    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    # Background: a pale tone, fine diagonal weave and pixel noise.
    tone = rng.uniform(175, 225)
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    weave = 10 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 1.3 + phase)
    background = tone + weave + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE))
    background = np.repeat(background[..., None], 3, -1) * np.array([1.0, 0.98, 0.94])
    # Shape: its colour, lit from the top left, with a fine stripe texture.
    light = 1.15 - 0.45 * ((x - cx + radius) + (y - cy + radius)) / (4 * radius + 1e-6)
    stripes = 1 + 0.12 * np.sin((x + y) * 2.2 + rng.uniform(0, 2 * np.pi))
    colour = np.array(RGB[attributes["colour"]], np.float32) * rng.uniform(0.9, 1.1, 3)
    surface = colour * (np.clip(light, 0.55, 1.3) * stripes)[..., None]
    image = background * (1 - fill[..., None]) + surface * fill[..., None]
    image = image * (1 - edge[..., None]) + 25.0 * edge[..., None]  # dark outline
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def scene(split, index):
    """``(image, captions, attributes)`` of example ``index`` of ``split`` (deterministic)."""
    rng = np.random.default_rng([SPLIT_SEEDS[split], index])
    attributes = sample_attributes(split, rng)
    image = render(attributes, rng)
    captions = [caption(attributes, t, rng) for t in range(CAPTIONS_PER_IMAGE)]
    return image, captions, attributes


class ShapesCaptions(tfds.core.GeneratorBasedBuilder):
    """tfds builder of ``shapes_captions`` (see the module docstring); no download."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "64x64 scenes, 4 attributes, 5 captions, held-out combinations."}

    def _info(self):
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[1],
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "captions": tfds.features.Tensor(shape=(CAPTIONS_PER_IMAGE,), dtype=tf.string),
                **{name: tfds.features.ClassLabel(names=list(options))
                   for name, options in ATTRIBUTES.items()},
            }),
            supervised_keys=("image", "shape"),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        for index in range(SPLITS[split]):
            image, captions, attributes = scene(split, index)
            yield index, {"image": image, "captions": captions, **attributes}


def _prepare_shapes_captions(builder):
    builder.download_and_prepare()  # procedural: nothing to download


# --- Loading --------------------------------------------------------------------------------


def load_captioned(name, split, batch_size, data_dir=None, shuffle=False, seed=None, repeat=False,
                   drop_remainder=False, one_caption=True):
    """Batches of ``{"images" [B, 64, 64, 3] in [-1, 1], "text" [B], <attribute> [B]}``.

    ``one_caption``: each example carries one of its captions, drawn afresh each epoch from a
    seeded stream (``text`` [B]); otherwise all five (``captions`` [B, 5]). Never downloads:
    raises ``training.data.DatasetNotPreparedError`` naming the prepare command.
    """
    from training import data

    spec = data.get_dataset_spec(name)
    if not data.is_prepared(name, data_dir):
        option = f" --data-dir {data_dir}" if data_dir else ""
        raise data.DatasetNotPreparedError(
            f"{name} is not prepared in {data_dir or 'the default tfds data dir'}; "
            f"run `python -m training.data prepare {name}{option}` first")
    dataset = tfds.load(spec.tfds_name, split=split, data_dir=data_dir, download=False,
                        shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed))
    if spec.cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    picks = tf.data.Dataset.random(seed=0 if seed is None else seed)
    dataset = tf.data.Dataset.zip((dataset, picks))

    def convert(example, pick):
        result = {"images": tf.cast(example["image"], tf.float32) / 127.5 - 1.0,
                  **{name: example[name] for name in ATTRIBUTES}}
        if one_caption:
            result["text"] = example["captions"][pick % CAPTIONS_PER_IMAGE]
        else:
            result["captions"] = example["captions"]
        return result

    dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def load_split_arrays(name, split, data_dir=None, limit=None):
    """The whole ``split`` as numpy: ``images`` float32 [-1, 1], ``captions`` [N, 5] str,
    and one int array per attribute (for evaluation and the oracle)."""
    arrays = {}
    count = 0
    for batch in load_captioned(name, split, 500, data_dir, one_caption=False):
        for key, value in batch.items():
            arrays.setdefault(key, []).append(value.numpy())
        count += len(batch["images"])
        if limit is not None and count >= limit:
            break
    result = {key: np.concatenate(values)[:limit] for key, values in arrays.items()}
    result["captions"] = np.vectorize(lambda b: b.decode())(result["captions"])
    return result


def load_cub_with_reed_captions(split, captions_dir, data_dir=None, examples=None):
    """CUB-200-2011 (tfds ``caltech_birds2011``) with Reed et al. 2016's captions.

    ``captions_dir`` is the unpacked ``text_c10`` folder of the authors' ``cvpr2016_cub``
    download (``<class>/<image>.txt``, one caption per line). Yields
    ``{"images" [H, W, 3] in [-1, 1], "captions" [k] string}`` for the images that have captions.
    ``examples`` replaces the tfds data set (a tf.data of tfds's feature dicts).
    """
    if examples is None:
        examples = tfds.load("caltech_birds2011", split=split, data_dir=data_dir, download=False)
    captions = {}
    for root, _, files in os.walk(captions_dir):
        for file in files:
            if file.endswith(".txt"):
                key = os.path.relpath(os.path.join(root, file), captions_dir)[:-4]
                with open(os.path.join(root, file)) as f:
                    captions[key] = "\n".join(line.strip() for line in f if line.strip())
    if not captions:
        raise FileNotFoundError(f"no caption files (<class>/<image>.txt) under {captions_dir}; "
                                "unpack Reed et al.'s cvpr2016_cub text_c10 there")
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(list(captions), list(captions.values())), "")

    def join(example):
        key = tf.strings.regex_replace(example["image/filename"], r"\.jpg$", "")
        text = table.lookup(key)
        image = tf.cast(example["image"], tf.float32) / 127.5 - 1.0
        return {"images": image, "captions": tf.strings.split(text, "\n")}, text != ""

    return examples.map(join).filter(lambda example, found: found).map(lambda example, _: example)


def _register():
    from training import data

    data.register_dataset(data.DatasetSpec(
        name="shapes_captions",
        tfds_name="shapes_captions",
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        num_examples=dict(SPLITS),
        num_classes=len(SHAPES),
        description="procedural 64x64 scenes, 5 captions each, held-out shape+colour pairs",
        citation="GAN Zoo, training/captions.py (after Mansimov et al. 2016; Kuhnle & "
        "Copestake 2017, ShapeWorld)",
        prepare=_prepare_shapes_captions,
    ))


_register()
