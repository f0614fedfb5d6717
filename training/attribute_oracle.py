"""The attribute oracle: does a generated image show what its caption says?

A small CNN trained on the real renders of ``shapes_captions``' train split, with one softmax
head per attribute (shape, colour, size, position). Per-attribute accuracy of generated images
against their caption's attributes measures caption-image agreement; its 128-d penultimate
layer is the feature space of the text-to-image FID (``training.text_to_image_quality``).
Training adds Gaussian pixel noise and random blur so generator artefacts do not fool it
(hand-written geometry proved brittle under noise, /work/shared/DATA.md).

    python -m training.attribute_oracle train [--epochs 3]
    python -m training.attribute_oracle verify

It is shipped in ``saved_models/evaluators/`` and pinned by sha256 in ``ORACLES``, like the
Fashion-MNIST evaluator (``training.feature_networks``); a retrained oracle is a different
instrument, so its sha256 is updated on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from training.feature_networks import REPO_ROOT, sha256_of

ORACLES = {
    "shapes_captions": {
        "name": "shapes_oracle",
        "path": "saved_models/evaluators/shapes_captions_attribute_oracle.keras",
        "sha256": "ec0ed05d1abd7e81e4d6173f095218354c372e53404dce230312f36bbddbfdb3",
    },
}
FEATURE_LAYER = "features"


class OracleError(RuntimeError):
    """The oracle file is missing or is not the registered one."""


def build_oracle(image_shape=(64, 64, 3), width=32, feature_dim=128):
    """4 x (conv 3x3, BN, ReLU, 2x2 max-pool), dense ``features``, one softmax head per attribute."""
    import keras
    from keras import layers

    from training.captions import ATTRIBUTES

    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for multiple in (1, 2, 4, 4):
        x = layers.Conv2D(width * multiple, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    features = layers.Dense(feature_dim, activation="relu", name=FEATURE_LAYER)(x)
    x = layers.Dropout(0.3)(features)
    outputs = {name: layers.Dense(len(options), activation="softmax", name=name)(x)
               for name, options in ATTRIBUTES.items()}
    return keras.Model(inputs, outputs, name="attribute_oracle")


def _augment(images, seed):
    import tensorflow as tf

    noise = tf.random.stateless_normal(tf.shape(images), seed) * tf.random.stateless_uniform(
        [tf.shape(images)[0], 1, 1, 1], seed + 1, 0.0, 0.15)
    blurred = tf.nn.avg_pool2d(images, 3, 1, "SAME")
    blur = tf.cast(tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed + 2) < 0.3,
                   images.dtype)
    return tf.clip_by_value(blur * blurred + (1 - blur) * images + noise, -1.0, 1.0)


def train(dataset="shapes_captions", epochs=3, batch_size=128, out=None, data_dir=None, seed=0):
    import keras
    import tensorflow as tf

    from training.captions import ATTRIBUTES, load_captioned
    from training.files import atomic_save_model, atomic_write_json

    keras.utils.set_random_seed(seed)
    out = out or os.path.join(REPO_ROOT, ORACLES[dataset]["path"])
    model = build_oracle()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss={name: "sparse_categorical_crossentropy" for name in ATTRIBUTES},
                  metrics={name: "accuracy" for name in ATTRIBUTES})
    batches = load_captioned(dataset, "train", batch_size, data_dir, shuffle=True, seed=seed,
                             drop_remainder=True)
    batches = batches.enumerate().map(lambda step, b: (
        _augment(b["images"], tf.stack([step, tf.constant(seed, tf.int64)])),
        {name: b[name] for name in ATTRIBUTES}))
    started = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=2)
    seconds = time.perf_counter() - started
    atomic_save_model(model, out)
    oracle = Oracle(keras.saving.load_model(out))
    report = {"epochs": epochs, "seconds": round(seconds, 1), "sha256": sha256_of(out)}
    for split in ("test", "novel"):
        report[f"accuracy_{split}"] = oracle.real_accuracy(dataset, split, data_dir)
    atomic_write_json(os.path.splitext(out)[0] + ".json", report)
    return report


class Oracle:
    """Attribute predictions and features of images in [-1, 1]."""

    def __init__(self, model, name="shapes_oracle"):
        import keras

        self.name = name
        self.model = model
        self.two_headed = keras.Model(model.inputs, [model.get_layer(FEATURE_LAYER).output,
                                                     model.outputs])

    def predict(self, images, batch_size=500):
        """``(features [N, 128], {attribute: predicted index [N]})``."""
        from training.captions import ATTRIBUTES

        features, predictions = [], {name: [] for name in ATTRIBUTES}
        for start in range(0, len(images), batch_size):
            f, heads = self.two_headed(np.asarray(images[start:start + batch_size], np.float32),
                                       training=False)
            features.append(np.asarray(f))
            heads = dict(zip(self.model.output_names, heads)) if isinstance(heads, list) else heads
            for name in ATTRIBUTES:
                predictions[name].append(np.argmax(np.asarray(heads[name]), axis=1))
        return np.concatenate(features), {k: np.concatenate(v) for k, v in predictions.items()}

    def accuracy(self, images, attributes):
        """Per-attribute accuracy of ``images`` against ``attributes`` ({name: index [N]}) and
        their mean (``mean``); plus ``all`` (every attribute right)."""
        _, predicted = self.predict(images)
        correct = {name: predicted[name] == np.asarray(attributes[name]) for name in predicted}
        result = {name: float(np.mean(hits)) for name, hits in correct.items()}
        result["mean"] = float(np.mean(list(result.values())))
        result["all"] = float(np.mean(np.all(np.stack(list(correct.values())), axis=0)))
        return result

    def real_accuracy(self, dataset, split, data_dir=None, limit=2000):
        from training.captions import ATTRIBUTES, load_split_arrays

        arrays = load_split_arrays(dataset, split, data_dir, limit)
        return self.accuracy(arrays["images"], {name: arrays[name] for name in ATTRIBUTES})


def load_oracle(dataset="shapes_captions", path=None):
    """The shipped oracle of ``dataset`` after checking its sha256 (``OracleError`` otherwise)."""
    import keras

    entry = ORACLES.get(dataset)
    if entry is None:
        raise OracleError(f"no attribute oracle for {dataset!r}; known: {sorted(ORACLES)}")
    if path is None:
        path = os.path.join(REPO_ROOT, entry["path"])
        if not os.path.isfile(path):
            raise OracleError(f"the attribute oracle {path} is missing; rebuild it with "
                              f"`python -m training.attribute_oracle train` (a new sha256)")
        if entry["sha256"] is not None and sha256_of(path) != entry["sha256"]:
            raise OracleError(f"{path} is not the registered oracle (sha256 differs); restore it "
                              "with git or rebuild it and register its sha256 in ORACLES")
    return Oracle(keras.saving.load_model(path), entry["name"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.attribute_oracle",
                                     description="Train or verify the attribute oracle.")
    parser.add_argument("command", choices=["train", "verify"])
    parser.add_argument("--dataset", default="shapes_captions")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            report = train(args.dataset, args.epochs, out=args.out, data_dir=args.data_dir)
        else:
            oracle = load_oracle(args.dataset)
            report = {split: oracle.real_accuracy(args.dataset, split, args.data_dir)
                      for split in ("test", "novel")}
    except (OracleError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
