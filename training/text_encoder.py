"""Train the joint text-image embedding of the text-to-image GANs, and measure its retrieval.

    python -m training.text_encoder train [--dataset shapes_captions] [--epochs 6] [--out PATH]
    python -m training.text_encoder verify

The encoder (``zoo.text_encoder.DualEncoder``) is trained once on the train split's captions
and images with the class-aware contrastive objective, then shipped under
``saved_models/evaluators/`` pinned by sha256 in ``ENCODERS``: the GANs take its text tower
frozen (their ``text_encoder`` hyper-parameter), and R-precision (``r_precision``) ranks
captions for images through both towers. Retraining makes a new encoder whose embeddings and
R-precision figures are not comparable with the old one's: update the sha256 on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from training.feature_networks import REPO_ROOT, sha256_of

ENCODERS = {
    "shapes_captions": {
        "path": "saved_models/evaluators/shapes_captions_text_image.keras",
        "sha256": "b218381fb2bde9202774a0b1e4fad950a7fbdf3154b73c0e6557f1fa26ece015",
    },
}
R_PRECISION_CANDIDATES = 100  # 1 true caption + 99 of other attribute combinations (Xu et al. 2018)


class EncoderError(RuntimeError):
    """The shipped encoder is missing or is not the registered one."""


def combination_ids(attributes):
    """One int per example identifying its (shape, colour, size, position) combination."""
    from training.captions import ATTRIBUTES

    ids = 0
    for name, options in ATTRIBUTES.items():
        ids = ids * len(options) + attributes[name]
    return ids


def encoder_path(dataset="shapes_captions"):
    try:
        entry = ENCODERS[dataset]
    except KeyError:
        raise EncoderError(f"no text encoder for {dataset!r}; known: {sorted(ENCODERS)}") from None
    return os.path.join(REPO_ROOT, entry["path"])


def load_encoder(dataset="shapes_captions", path=None, verify=True):
    """The shipped ``DualEncoder`` of ``dataset`` (sha256-checked) or the one at ``path``."""
    import keras

    import zoo.text_encoder  # noqa: F401  (registers the classes)

    if path is None:
        path = encoder_path(dataset)
        expected = ENCODERS[dataset]["sha256"]
        if not os.path.isfile(path):
            raise EncoderError(f"no text encoder at {path}; build it with "
                               f"`python -m training.text_encoder train --dataset {dataset}`")
        if verify and expected is not None and sha256_of(path) != expected:
            raise EncoderError(f"{path} is not the registered encoder (sha256 differs); rebuild it "
                               f"or update ENCODERS in training/text_encoder.py")
    return keras.saving.load_model(path)


def build_dual_encoder(dataset="shapes_captions", seed=0):
    import keras

    from training import captions
    from zoo.text_encoder import DualEncoder, TextEncoder, image_encoder

    keras.utils.set_random_seed(seed)
    if dataset != "shapes_captions":
        raise ValueError(f"no caption vocabulary for {dataset!r}")
    return DualEncoder(TextEncoder(captions.vocabulary()), image_encoder((64, 64, 3)))


def training_batches(dataset, split, batch_size, data_dir=None, seed=0, repeat=True):
    from training.captions import ATTRIBUTES, load_captioned

    def add_combination(batch):
        batch = dict(batch)
        batch["combination"] = combination_ids({name: batch[name] for name in ATTRIBUTES})
        return batch

    return load_captioned(dataset, split, batch_size, data_dir, shuffle=repeat, seed=seed,
                          repeat=repeat, drop_remainder=True).map(add_combination)


def r_precision(image_embeddings, caption_embeddings, combinations, candidates=R_PRECISION_CANDIDATES,
                seed=0):
    """Fraction of images whose own caption scores highest among ``candidates`` captions: it and
    ``candidates - 1`` captions of other attribute combinations (R-precision with R = 1, as
    AttnGAN's protocol, Xu et al. 2018). ``caption_embeddings[i]`` is image i's caption."""
    rng = np.random.default_rng(seed)
    image_embeddings = np.asarray(image_embeddings)
    caption_embeddings = np.asarray(caption_embeddings)
    combinations = np.asarray(combinations)
    hits = []
    for index in range(len(image_embeddings)):
        others = np.flatnonzero(combinations != combinations[index])
        if len(others) < candidates - 1:
            raise ValueError(f"r_precision needs {candidates - 1} captions of other combinations; "
                             f"got {len(others)}")
        pool = np.concatenate([[index], rng.choice(others, candidates - 1, replace=False)])
        scores = caption_embeddings[pool] @ image_embeddings[index]
        hits.append(np.argmax(scores) == 0)
    return float(np.mean(hits))


def embed_texts(encoder, texts, batch_size=500):
    import tensorflow as tf

    return np.concatenate([np.asarray(encoder.text_encoder(tf.constant(list(texts[i:i + batch_size]))))
                           for i in range(0, len(texts), batch_size)])


def embed_images(encoder, images, batch_size=500):
    return np.concatenate([np.asarray(encoder.image_encoder(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def retrieval(encoder, dataset="shapes_captions", split="test", data_dir=None, limit=1000, seed=0):
    """R-precision of real ``split`` images against their captions (the encoder's own figure)."""
    from training.captions import ATTRIBUTES, load_split_arrays

    arrays = load_split_arrays(dataset, split, data_dir, limit)
    rng = np.random.default_rng(seed)
    texts = arrays["captions"][np.arange(len(arrays["captions"])),
                               rng.integers(0, arrays["captions"].shape[1], len(arrays["captions"]))]
    combinations = combination_ids({name: arrays[name] for name in ATTRIBUTES})
    return r_precision(embed_images(encoder, arrays["images"]), embed_texts(encoder, texts),
                       combinations, seed=seed)


def train(dataset="shapes_captions", epochs=6, batch_size=128, learning_rate=1e-3, out=None,
          data_dir=None, seed=0, steps_per_epoch=None):
    """Train a fresh ``DualEncoder``, save it to ``out`` (atomically), return (encoder, report)."""
    import keras

    from training import data
    from training.files import atomic_save_model, atomic_write_json

    out = out or encoder_path(dataset)
    encoder = build_dual_encoder(dataset, seed)
    encoder.compile(optimizer=keras.optimizers.Adam(learning_rate))
    steps = steps_per_epoch or data.num_examples(dataset, "train") // batch_size
    started = time.perf_counter()
    history = encoder.fit(training_batches(dataset, "train", batch_size, data_dir, seed),
                          epochs=epochs, steps_per_epoch=steps, verbose=2)
    seconds = time.perf_counter() - started
    atomic_save_model(encoder, out)
    report = {
        "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "seconds": round(seconds, 1),
        "final_loss": float(history.history["loss"][-1]),
        "r_precision_test": retrieval(encoder, dataset, "test", data_dir),
        "r_precision_novel": retrieval(encoder, dataset, "novel", data_dir),
        "sha256": sha256_of(out),
    }
    atomic_write_json(os.path.splitext(out)[0] + ".json", report)
    return encoder, report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.text_encoder",
                                     description="Train or verify the text-image encoder.")
    parser.add_argument("command", choices=["train", "verify"])
    parser.add_argument("--dataset", default="shapes_captions")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            _, report = train(args.dataset, args.epochs, args.batch_size, out=args.out,
                              data_dir=args.data_dir)
        else:
            encoder = load_encoder(args.dataset)
            report = {"r_precision_test": retrieval(encoder, args.dataset, "test", args.data_dir),
                      "r_precision_novel": retrieval(encoder, args.dataset, "novel", args.data_dir)}
    except (EncoderError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
