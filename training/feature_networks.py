"""Feature networks for the sample-quality metrics of ``training.metrics``.

FID, KID, precision/recall need a feature vector per image, the Inception Score a class
distribution per image. Two kinds of network give them:

* The project's own evaluator per data set (``load_feature_network("fashion_mnist")``): a small
  CNN classifier trained on the real training split by this module, shipped under
  ``saved_models/evaluators/`` and pinned by sha256 in ``EVALUATORS``. Features are its
  penultimate layer (128-d, post-ReLU, as Inception's pool3 is post-ReLU), probabilities its
  softmax. Metric names carry its short name (``fid_fmnist_10k``): figures computed on it are
  comparable with each other, never with published Inception-based figures.
* Inception-v3 (Szegedy et al. 2016) from ``keras.applications`` with ImageNet weights
  (``load_inception_v3()``), for users who have the weights cached; built lazily. Features are
  the 2048-d global average pool, probabilities the 1000-way softmax. Grey images are resized
  to 299x299 (bilinear) and replicated to 3 channels. Note that Keras's weights are not the
  exact TF-1 graph (``pt_inception-2015-12-05``) that published FIDs use, so even these figures
  are only close to, not equal to, published ones.

Commands::

    python -m training.feature_networks train fashion_mnist [--epochs 15] [--out PATH]
    python -m training.feature_networks verify fashion_mnist

Every network takes images as float arrays ``[N, H, W, C]`` (or ``[N, H, W]``) in [-1, 1], the
range of the zoo's generators and of ``training.data.load_images``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVALUATOR_DIR = os.path.join("saved_models", "evaluators")

# The one registry of the project's evaluators. ``path`` is relative to the repository root. A
# rebuilt evaluator is a different network (its metric values are not comparable with the old
# one's): retraining means updating ``sha256`` here on purpose, and saying so in
# docs/evaluators.md.
EVALUATORS = {
    "fashion_mnist": {
        "name": "fmnist",
        "path": "saved_models/evaluators/fashion_mnist_classifier.keras",
        "sha256": "a0c380225b4622792ef6610b805e920d1e38ae28911b6723608c50093b2ce748",
        "image_shape": (28, 28, 1),
        "num_classes": 10,
        "feature_layer": "features",
        "probability_layer": "probabilities",
    },
}

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    + INCEPTION_WEIGHTS_FILE
)

DEFAULT_BATCH_SIZE = 500


class FeatureNetworkError(RuntimeError):
    """A feature network that cannot be loaded: missing file, wrong sha256, missing weights."""


class EvaluatorChecksumError(FeatureNetworkError):
    """The evaluator file on disk is not the one registered in ``EVALUATORS``."""


def rebuild_command(dataset: str) -> str:
    return f"python -m training.feature_networks train {dataset}"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- The common interface -------------------------------------------------------------------------


def _check_range(name, images) -> np.ndarray:
    if images.dtype == np.uint8:
        raise ValueError(f"{name}: got uint8 images; pass floats in [-1, 1] (x / 127.5 - 1)")
    images = images.astype(np.float32, copy=False)
    if images.size and (images.min() < -1.001 or images.max() > 1.001):
        raise ValueError(f"{name}: images must be in [-1, 1], got values in "
                         f"[{images.min():.3g}, {images.max():.3g}]")
    return images


class FeatureNetwork:
    """Features and class probabilities of images in [-1, 1], computed in batches.

    ``model`` maps a float32 batch ``[B, *input_shape]`` to ``(features, probabilities)``;
    ``preprocess`` (optional) maps the caller's batch to the model's input. ``name`` is the short
    name that metric names carry (``fid_<name>_10k``).
    """

    def __init__(self, name, model, image_shape, feature_dim, num_classes, preprocess=None,
                 batch_size=DEFAULT_BATCH_SIZE, info=None):
        self.name = name
        self.image_shape = tuple(image_shape)
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.info = dict(info or {})
        self._model = model
        self._preprocess = preprocess
        self._call = None

    def __repr__(self):
        return (f"FeatureNetwork(name={self.name!r}, image_shape={self.image_shape}, "
                f"feature_dim={self.feature_dim}, num_classes={self.num_classes})")

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == len(self.image_shape) and self.image_shape[-1] == 1:
            images = images[..., None]
        if images.ndim != len(self.image_shape) + 1 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"{self.name}: expected images of shape "
                             f"[N, {', '.join(map(str, self.image_shape))}], got {images.shape}")
        return _check_range(self.name, images)

    def _forward(self, batch):
        if self._call is None:
            import tensorflow as tf

            model, preprocess = self._model, self._preprocess

            @tf.function(reduce_retracing=True)
            def call(x):
                if preprocess is not None:
                    x = preprocess(x)
                features, probabilities = model(x, training=False)
                return features, probabilities

            self._call = call
        features, probabilities = self._call(batch)
        return features.numpy(), probabilities.numpy()

    def features_and_probabilities(self, images) -> tuple[np.ndarray, np.ndarray]:
        """``(features [N, feature_dim], probabilities [N, num_classes])`` in one pass."""
        images = self._check(images)
        features, probabilities = [], []
        # Every batch has the same shape (the last one zero-padded), so the traced graph is reused.
        size = min(self.batch_size, len(images))
        for start in range(0, len(images), size):
            batch = images[start:start + size]
            count = len(batch)
            if count < size:
                batch = np.concatenate([batch, np.zeros((size - count,) + batch.shape[1:],
                                                        batch.dtype)])
            f, p = self._forward(batch)
            features.append(f[:count])
            probabilities.append(p[:count])
        if not features:
            return (np.zeros((0, self.feature_dim), np.float32),
                    np.zeros((0, self.num_classes), np.float32))
        return np.concatenate(features), np.concatenate(probabilities)

    def features(self, images) -> np.ndarray:
        """Feature vectors ``[N, feature_dim]`` (float32) of images in [-1, 1]."""
        return self.features_and_probabilities(images)[0]

    def probabilities(self, images) -> np.ndarray:
        """Class probabilities ``[N, num_classes]`` (float32, rows sum to 1), images in [-1, 1]."""
        return self.features_and_probabilities(images)[1]

    def predict_classes(self, images) -> np.ndarray:
        return np.argmax(self.probabilities(images), axis=1)


# --- The project's classifiers --------------------------------------------------------------------


def build_classifier(image_shape=(28, 28, 1), num_classes=10, feature_dim=128, dropout=0.3):
    """A small CNN: 3 x (conv 3x3, batch norm, ReLU, 2x2 max-pool) with 32/64/128 filters,
    then dense ``feature_dim`` + ReLU (layer ``features``), dropout, dense logits and softmax
    (layer ``probabilities``). About 0.24 M parameters for 28x28x1.
    """
    import keras
    from keras import layers

    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    features = layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = layers.Dropout(dropout)(features)
    logits = layers.Dense(num_classes, name="logits")(x)
    probabilities = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="classifier")


def _two_headed(model, feature_layer, probability_layer):
    import keras

    return keras.Model(model.inputs, [model.get_layer(feature_layer).output,
                                      model.get_layer(probability_layer).output])


def verify_evaluator(dataset: str, path: str | None = None) -> str:
    """The absolute path of ``dataset``'s evaluator after checking its sha256 against
    ``EVALUATORS``; ``FeatureNetworkError`` (or ``EvaluatorChecksumError``) otherwise."""
    if dataset not in EVALUATORS:
        raise FeatureNetworkError(
            f"No evaluator registered for dataset {dataset!r}; registered: "
            f"{', '.join(sorted(EVALUATORS))}. For Inception-v3 use load_inception_v3()."
        )
    entry = EVALUATORS[dataset]
    path = path or os.path.join(REPO_ROOT, entry["path"])
    if not os.path.isfile(path):
        raise FeatureNetworkError(
            f"The {dataset} evaluator {path} is missing. Restore it from the repository "
            f"(git checkout -- {entry['path']}) or rebuild it with `{rebuild_command(dataset)}` "
            "(a rebuilt evaluator has a new sha256 to register in training/feature_networks.py "
            "EVALUATORS; its metric values are not comparable with the old one's)."
        )
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise EvaluatorChecksumError(
            f"sha256 mismatch for the {dataset} evaluator {path}: the file has {actual}, "
            f"EVALUATORS in training/feature_networks.py registers {entry['sha256']}. The file "
            f"is corrupt or not the registered evaluator. Restore it (git checkout -- "
            f"{entry['path']}) or rebuild it with `{rebuild_command(dataset)}` and register the "
            "new sha256 it prints (metric values of different evaluators are not comparable)."
        )
    return path


def load_feature_network(dataset: str = "fashion_mnist", path: str | None = None,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> FeatureNetwork:
    """The project's evaluator for ``dataset``, sha256-checked against ``EVALUATORS``.

    ``path`` overrides the registered file (it must still have the registered sha256).
    ``dataset="inception_v3"`` gives ``load_inception_v3()``.
    """
    if dataset in ("inception", "inception_v3"):
        return load_inception_v3(batch_size=batch_size)
    path = verify_evaluator(dataset, path)
    entry = EVALUATORS[dataset]
    import keras

    model = keras.saving.load_model(path, compile=False)
    two_headed = _two_headed(model, entry["feature_layer"], entry["probability_layer"])
    feature_dim = two_headed.outputs[0].shape[-1]
    info = {"path": path, "sha256": entry["sha256"]}
    sidecar = _sidecar_path(path)
    if os.path.isfile(sidecar):
        with open(sidecar) as f:
            info.update({k: v for k, v in json.load(f).items() if k not in info})
    return FeatureNetwork(entry["name"], two_headed, entry["image_shape"], feature_dim,
                          entry["num_classes"], batch_size=batch_size, info=info)


# --- Inception-v3 ---------------------------------------------------------------------------------


def _inception_weights_help() -> str:
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    cached = os.path.join(keras_home, "models", INCEPTION_WEIGHTS_FILE)
    return (f"download {INCEPTION_WEIGHTS_URL} on a machine with internet access and copy it "
            f"to {cached} (Keras's cache), or pass weights=PATH_TO_THAT_H5_FILE")


def load_inception_v3(weights="imagenet", batch_size: int = 64,
                      resize_to: int = 299) -> FeatureNetwork:
    """Inception-v3 from ``keras.applications`` as a ``FeatureNetwork`` named ``inception``.

    ``weights``: ``"imagenet"`` (Keras's cache, else a download), a path to the ``.h5`` weights,
    or ``None`` (random: shapes and plumbing only, never for metrics). Input images of any size
    and 1 or 3 channels in [-1, 1] (Inception's own input range) are resized bilinearly to
    ``resize_to`` and grey is replicated to RGB. Features: 2048-d ``avg_pool``; probabilities:
    the 1000-way ImageNet softmax. Raises ``FeatureNetworkError`` saying how to get the weights
    if they are neither cached nor downloadable.
    """
    import keras
    import tensorflow as tf

    if isinstance(weights, str) and weights != "imagenet" and not os.path.isfile(weights):
        raise FeatureNetworkError(f"Inception-v3 weights file {weights} not found; "
                                  + _inception_weights_help())
    try:
        model = keras.applications.InceptionV3(include_top=True, weights=weights,
                                               input_shape=(resize_to, resize_to, 3))
    except Exception as error:  # a failed download surfaces as several exception types
        if weights != "imagenet":
            raise
        raise FeatureNetworkError(
            "The ImageNet weights of Inception-v3 could not be fetched "
            f"({type(error).__name__}: {error}); " + _inception_weights_help()
        ) from error
    two_headed = keras.Model(model.inputs, [model.get_layer("avg_pool").output, model.output])

    def preprocess(images):
        images = tf.convert_to_tensor(images, tf.float32)  # [B, H, W, 3]: grey replicated
        if images.shape[1] != resize_to or images.shape[2] != resize_to:
            images = tf.image.resize(images, (resize_to, resize_to), method="bilinear")
        return tf.clip_by_value(images, -1.0, 1.0)

    return ResizingFeatureNetwork(
        "inception", two_headed, (resize_to, resize_to, 3), 2048, 1000, preprocess=preprocess,
        batch_size=batch_size, info={"weights": weights if isinstance(weights, str) else None})


class ResizingFeatureNetwork(FeatureNetwork):
    """A ``FeatureNetwork`` whose ``preprocess`` accepts any image size with 1 or 3 channels."""

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name}: expected images [N, H, W, 1 or 3], got {images.shape}")
        images = _check_range(self.name, images)
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images  # grey -> RGB


# --- Training -------------------------------------------------------------------------------------


def _sidecar_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


def _labelled(dataset, split, batch_size, data_dir, shuffle, seed=None):
    from training.data import load_images

    return load_images(dataset, split=split, batch_size=batch_size, data_dir=data_dir,
                       shuffle=shuffle, seed=seed, with_labels=True, drop_remainder=False)


def evaluate_accuracy(network: FeatureNetwork, dataset: str = "fashion_mnist", split="test",
                      limit: int | None = None, data_dir: str | None = None) -> tuple[float, int]:
    """``(accuracy, count)`` of ``network``'s argmax on the first ``limit`` images of ``split``."""
    correct = count = 0
    for images, labels in _labelled(dataset, split, 500, data_dir, shuffle=False):
        images, labels = images.numpy(), labels.numpy()
        if limit is not None:
            images, labels = images[: limit - count], labels[: limit - count]
        correct += int((network.predict_classes(images) == labels).sum())
        count += len(labels)
        if limit is not None and count >= limit:
            break
    return correct / count, count


def train_classifier(dataset="fashion_mnist", out=None, epochs=15, batch_size=128, lr=2e-3,
                     seed=0, data_dir=None, verbose=1, steps_per_epoch=None) -> dict:
    """Train the evaluator of ``dataset`` on its train split, measure it on the whole test split,
    save ``out`` (``.keras``) and its sidecar ``.json`` (sha256, test accuracy, protocol), both
    atomically. Returns the sidecar's contents.
    """
    import keras
    import tensorflow as tf

    from training.data import get_dataset_spec, prepare
    from training.files import atomic_write_json

    spec = get_dataset_spec(dataset)
    if spec.num_classes is None:
        raise ValueError(f"{dataset} has no labels to train a classifier on")
    out = out or os.path.join(REPO_ROOT, EVALUATORS.get(dataset, {}).get(
        "path", os.path.join(EVALUATOR_DIR, f"{dataset}_classifier.keras")))
    if not out.endswith(".keras"):
        out += ".keras"
    data_dir = prepare(dataset, data_dir)
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()

    train = _labelled(dataset, "train", batch_size, data_dir, shuffle=True, seed=seed)
    test = _labelled(dataset, "test", 500, data_dir, shuffle=False)
    steps = (steps_per_epoch or -(-spec.num_examples["train"] // batch_size)) * epochs
    model = build_classifier(spec.image_shape, spec.num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    # Light augmentation (random 2-pixel shifts, no flips: they change some classes' look)
    # keeps a small network from overfitting in 15 epochs.
    shift = keras.layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant",
                                           fill_value=-1.0, seed=seed)
    train = train.map(lambda x, y: (shift(x, training=True), y),
                      num_parallel_calls=tf.data.AUTOTUNE)
    history = model.fit(train, epochs=epochs, validation_data=test, verbose=verbose,
                        steps_per_epoch=steps_per_epoch)

    loss, accuracy = model.evaluate(test, verbose=0)
    seconds = time.perf_counter() - started
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(out)}")
    # An uncompiled copy: the file holds the weights only, not Adam's moments (a third the size).
    inference = build_classifier(spec.image_shape, spec.num_classes)
    inference.set_weights(model.get_weights())
    try:
        inference.save(tmp)
        digest = sha256_of(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    record = {
        "dataset": dataset,
        "file": os.path.basename(out),
        "sha256": digest,
        "bytes": os.path.getsize(out),
        "test_accuracy": round(float(accuracy), 4),
        "test_loss": round(float(loss), 4),
        "test_examples": spec.num_examples["test"],
        "train_accuracy_last_epoch": round(float(history.history["accuracy"][-1]), 4),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": lr,
        "seed": seed,
        "parameters": int(model.count_params()),
        "feature_layer": "features",
        "feature_dim": int(model.get_layer("features").output.shape[-1]),
        "train_seconds": round(seconds, 1),
        "command": f"python -m training.feature_networks train {dataset} --epochs {epochs}",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    atomic_write_json(_sidecar_path(out), record)
    os.chmod(_sidecar_path(out), 0o644)  # mkstemp's 0600 would hide it from other users
    return record


# --- Command line ---------------------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m training.feature_networks",
        description="Train and verify the evaluator classifiers whose features and softmax the "
        "sample-quality metrics (FID, KID, IS, precision/recall) use.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train a data set's evaluator on its train split")
    train.add_argument("dataset", help=f"one of: {', '.join(sorted(EVALUATORS))}")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-dir", default=None)
    train.add_argument("--steps-per-epoch", type=int, default=None,
                       help="limit each epoch (smoke tests only; default: the whole split)")
    train.add_argument("--out", default=None,
                       help="output .keras path (default: the registered path under "
                       "saved_models/evaluators/)")
    verify = commands.add_parser("verify", help="check the sha256 and accuracy of an evaluator")
    verify.add_argument("dataset")
    verify.add_argument("--limit", type=int, default=None, help="test images to use (default all)")
    verify.add_argument("--data-dir", default=None)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        record = train_classifier(args.dataset, args.out, epochs=args.epochs,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                  data_dir=args.data_dir, verbose=2,
                                  steps_per_epoch=args.steps_per_epoch)
        print(json.dumps(record, indent=2, sort_keys=True))
        registered = EVALUATORS.get(args.dataset, {}).get("sha256")
        if registered != record["sha256"]:
            print(f"note: register the new evaluator: set EVALUATORS[{args.dataset!r}]['sha256'] "
                  f"= {record['sha256']!r} in training/feature_networks.py", file=sys.stderr)
        return 0
    try:
        network = load_feature_network(args.dataset)
    except FeatureNetworkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    accuracy, count = evaluate_accuracy(network, args.dataset, limit=args.limit,
                                        data_dir=args.data_dir)
    print(json.dumps({"dataset": args.dataset, "sha256_ok": True, "test_accuracy": accuracy,
                      "test_examples": count}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
