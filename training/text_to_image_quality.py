"""Caption-image agreement of text-to-image GANs, and their captioned sample grids.

``evaluate_text_to_image(model, dataset)`` scores images generated for held-out captions:

- **attribute accuracy** (``training.attribute_oracle``): per attribute and averaged, of images
  generated for ``test`` captions (seen attribute combinations, new scenes) and for ``novel``
  captions (held-out combinations), each with two reference rows: the **real images** of those
  captions (the oracle's ceiling) and images generated for **shuffled captions** scored against
  the original ones (chance: the agreement of an image with a caption it was not made for);
- **R-precision** (R = 1 of 100 candidates, Xu et al. 2018) through the text-image encoder
  (``training.text_encoder.r_precision``), for generated and for real images;
- **FID on the oracle's features** of generated test images against the real test images, with
  the real train-vs-test figure as the floor;
- **high-frequency energy** (``high_frequency_energy``): the share of the images' spectral energy
  above the highest frequency a quarter-resolution image holds, for generated and real test
  images: what StackGAN's Stage-II adds over its Stage-I draw upsampled (Zhang 2017, sec. 5.2
  compares the stages by eye and by Inception score, which needs ImageNet features).

Images drawn below the data's resolution (StackGAN's ``stage1_images``) are resized to it
bicubically before every measure, as one would show them. Every output of the generator is
scored: StackGAN's Stage-I draw gets the same measures under ``stage1_images_...`` names.

One caption per image (picked by ``seed``) and ``num_samples`` images per split (default 1,000).
The model is a Keras zoo model or a loaded SavedModel (its ``generate_from_text`` signature).
"""

from __future__ import annotations

import os
import textwrap

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from training import metrics
from training.files import atomic_write_bytes
from training.images import to_uint8

DEFAULT_SAMPLES = 1000
BATCH = 100


# --- Generation ------------------------------------------------------------------------------------


def generator_of(model):
    """``generate(captions list[str], seeds int64 [N]) -> images [N, H, W, 3] in [-1, 1]`` (and
    the model's extra outputs, e.g. StackGAN's ``stage1_images``) for a Keras model or a
    SavedModel."""
    if hasattr(model, "signatures"):
        signature = model.signatures["generate_from_text"]

        def generate(texts, seeds):
            out = signature(text=tf.constant(list(texts)), seed=tf.constant(seeds, tf.int64))
            return {k: v.numpy() for k, v in out.items() if not k.endswith("_png_bytes")}

        return generate
    from export.saved_model import latent_from_seeds

    def generate(texts, seeds):
        z = latent_from_seeds(tf.constant(seeds, tf.int64), model.latent_dim, "normal")
        outputs = model.generate_outputs(tf.constant(list(texts)), z, training=False)
        return {k: np.asarray(v) for k, v in outputs.items()}

    return generate


def generate_all(generate, texts, seed):
    results = {}
    for start in range(0, len(texts), BATCH):
        seeds = np.arange(start, min(start + BATCH, len(texts)), dtype=np.int64) + seed * 10**7
        for key, value in generate(texts[start:start + BATCH], seeds).items():
            results.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in results.items()}


# --- Grids -----------------------------------------------------------------------------------------


def captioned_grid(images, captions, columns=4, scale=2, caption_lines=3):
    """An RGB uint8 grid: each image enlarged ``scale`` times with its caption under it."""
    images = to_uint8(images)
    count, height, width = images.shape[:3]
    cell_w, text_h = width * scale + 8, 11 * caption_lines + 4
    cell_h = height * scale + text_h + 8
    rows = -(-count // columns)
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    chars = max(8, cell_w // 6)
    for index, (image, caption) in enumerate(zip(images, captions)):
        left, top = (index % columns) * cell_w + 4, (index // columns) * cell_h + 4
        tile = Image.fromarray(image[..., :3] if image.shape[-1] >= 3 else image[..., 0])
        canvas.paste(tile.resize((width * scale, height * scale), Image.Resampling.NEAREST), (left, top))
        lines = textwrap.wrap(caption, chars)[:caption_lines]
        for line_index, line in enumerate(lines):
            draw.text((left, top + height * scale + 2 + 11 * line_index), line, fill=(0, 0, 0))
    return np.asarray(canvas)


def save_captioned_grid(path, images, captions, columns=4):
    grid = captioned_grid(images, captions, columns)
    atomic_write_bytes(path, tf.io.encode_png(grid).numpy())
    return grid


def grid_captions(dataset, data_dir=None, seen=8, novel=8):
    """Fixed captions for sample grids: the first caption of the first ``seen`` test scenes and
    of the first ``novel`` scenes of held-out combinations (marked "[held out]")."""
    from training.captions import load_split_arrays

    texts = list(load_split_arrays(dataset, "test", data_dir, seen)["captions"][:, 0])
    return texts + [f"{t} [held out]" for t in load_split_arrays(dataset, "novel", data_dir,
                                                                  novel)["captions"][:, 0]]


class CaptionGrid(keras.callbacks.Callback):
    """After each epoch, draw one image per fixed caption (fixed noise) into
    ``samples/epoch_NNN.png`` with the caption under it, and into TensorBoard."""

    def __init__(self, run_dir, captions, seed=0, log_dir=None):
        super().__init__()
        self.samples_dir = os.path.join(run_dir, "samples")
        self.labels = list(captions)
        self.texts = [c.replace(" [held out]", "") for c in captions]
        self.seed = seed
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        images = generate_all(generator_of(self.model), self.texts, self.seed)
        grid = save_captioned_grid(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"),
                                   *grid_rows(images, self.labels))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=epoch + 1)
            self.writer.flush()


def grid_rows(outputs, labels):
    """``(images, labels)`` of a captioned grid: per caption, each earlier output of the generator
    (StackGAN's ``stage1_images``, resized to the final size and labelled ``[stage1]``) before
    its final image."""
    final = np.asarray(outputs["images"])
    extras = [name for name in outputs if name != "images"]
    images, out_labels = [], []
    for index, label in enumerate(labels):
        for name in extras:
            images.append(at_resolution(outputs[name][index:index + 1], final.shape[1:3])[0])
            out_labels.append(f"[{name.replace('_images', '')}] {label}")
        images.append(final[index])
        out_labels.append(label)
    return np.stack(images), out_labels


# --- Evaluation ------------------------------------------------------------------------------------


def _split(dataset, split, num_samples, data_dir, seed):
    from training.captions import ATTRIBUTES, load_split_arrays

    arrays = load_split_arrays(dataset, split, data_dir, num_samples)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, arrays["captions"].shape[1], len(arrays["captions"]))
    texts = arrays["captions"][np.arange(len(picks)), picks]
    attributes = {name: arrays[name] for name in ATTRIBUTES}
    return arrays["images"], list(texts), attributes


def evaluate_text_to_image(model, dataset="shapes_captions", num_samples=None, seed=0, data_dir=None):
    """The record described in the module docstring (``metrics``, ``reference`` and ``protocol``)."""
    from training.attribute_oracle import load_oracle
    from training.text_encoder import (combination_ids, embed_images, embed_texts, load_encoder,
                                       r_precision)

    num_samples = num_samples or DEFAULT_SAMPLES
    oracle, encoder = load_oracle(dataset), load_encoder(dataset)
    generate = generator_of(model)
    metrics_out, reference = {}, {}
    rng = np.random.default_rng(seed)
    real_features = {}
    for split in ("test", "novel"):
        real, texts, attributes = _split(dataset, split, num_samples, data_dir, seed)
        fakes = generate_all(generate, texts, seed)
        shuffled = [texts[i] for i in rng.permutation(len(texts))]
        chance_images = at_resolution(generate_all(generate, shuffled, seed + 1)["images"],
                                      real.shape[1:3])
        fakes = {name: at_resolution(value, real.shape[1:3]) for name, value in fakes.items()}
        for name, images in fakes.items():
            key = "" if name == "images" else f"{name}_"
            accuracy = oracle.accuracy(images, attributes)
            for attribute, value in accuracy.items():
                metrics_out[f"{key}attribute_accuracy_{attribute}_{split}"] = value
            if split == "test":
                metrics_out[f"{key}high_frequency_energy_test"] = high_frequency_energy(images)
        for attribute, value in oracle.accuracy(real, attributes).items():
            reference[f"real_images_attribute_accuracy_{attribute}_{split}"] = value
        for attribute, value in oracle.accuracy(chance_images, attributes).items():
            reference[f"shuffled_captions_attribute_accuracy_{attribute}_{split}"] = value
        text_embeddings = embed_texts(encoder, texts)
        combinations = combination_ids(attributes)
        for name, images in fakes.items():
            key = "" if name == "images" else f"{name}_"
            metrics_out[f"{key}r_precision_{split}"] = r_precision(
                embed_images(encoder, images), text_embeddings, combinations, seed=seed)
        reference[f"real_images_r_precision_{split}"] = r_precision(
            embed_images(encoder, real), text_embeddings, combinations, seed=seed)
        if split == "test":
            real_features["test"] = oracle.predict(real)[0]
            reference["real_images_high_frequency_energy_test"] = high_frequency_energy(real)
            for name, images in fakes.items():
                key = "" if name == "images" else f"{name}_"
                metrics_out[f"{key}fid_{oracle.name}_test"] = _fid(oracle.predict(images)[0],
                                                                   real_features["test"])
    train_real, _, _ = _split(dataset, "train", num_samples, data_dir, seed)
    reference[f"real_train_fid_{oracle.name}_test"] = _fid(oracle.predict(train_real)[0],
                                                            real_features["test"])
    return {
        "metrics": metrics_out,
        "reference": reference,
        "protocol": {"evaluator": oracle.name, "text_encoder": "shapes_captions_text_image",
                     "dataset": dataset, "splits": ["test", "novel"], "num_samples": num_samples,
                     "captions_per_image": 1, "r_precision_candidates": 100, "seed": seed,
                     "lower_resolutions": "resized bicubically to the data's",
                     "high_frequency_cutoff": HIGH_FREQUENCY_CUTOFF},
    }


def at_resolution(images, size):
    """``images`` resized bicubically to ``size`` (H, W) and clipped to [-1, 1]; as they are if
    already that size."""
    images = np.asarray(images, np.float32)
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return np.clip(tf.image.resize(images, tuple(size), method="bicubic").numpy(), -1.0, 1.0)


HIGH_FREQUENCY_CUTOFF = 1 / 8  # cycles per pixel: the Nyquist limit of a quarter-resolution image


def high_frequency_energy(images, cutoff=HIGH_FREQUENCY_CUTOFF):
    """Mean share of each image's spectral energy (grey levels, the mean removed) outside the band
    a ``cutoff``-limited image holds (either axis above ``cutoff`` cycles per pixel; 1/8 is the
    band of a 16x16 image shown at 64x64). Upsampling adds little there; sharp edges put energy
    there."""
    grey = np.asarray(images, np.float64).mean(axis=-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[1]), np.fft.fftfreq(grey.shape[2]), indexing="ij")
    high = np.maximum(np.abs(fy), np.abs(fx)) > cutoff
    total = power.sum(axis=(1, 2))
    share = np.where(total > 0, power[:, high].sum(axis=1) / np.maximum(total, 1e-30), 0.0)
    return float(share.mean())


def _fid(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(metrics.frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                          b.mean(0), np.cov(b, rowvar=False)))
