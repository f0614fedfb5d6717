"""Measure a generator's quality: ``python -m training.evaluate MODEL_PATH --dataset fashion_mnist``.

MODEL_PATH is a run directory, a ``.keras`` file or an exported SavedModel version directory.
Generated samples and real test images go through the same feature network (``training.
feature_networks``); the maths lives in ``training.metrics``. The command prints one JSON object
(metrics and protocol) and appends it to ``evaluations.jsonl`` beside the model (for a SavedModel
version: in the model's directory, since versions are immutable). Metric names carry the
feature network and sample count (``fid_fmnist_10k``), so figures of different protocols are
never compared by accident.

What is measured is up to the model's kind (``zoo.kinds``). Image-to-image models (pix2pix,
CycleGAN) get translation metrics instead of FID/KID
(``training.translation_quality``): ``--task edges_to_photo|grey_to_colour`` (required for a
pix2pix ``.keras`` file or SavedModel; a run directory's ``config.json`` names it) gives L1,
PSNR and SSIM on the held-out tiles with the input-itself baseline (``baseline_input``),
``--crop-size`` their size; CycleGAN gets ``sneakers_and_boots``: translation accuracy, cycle
L1 and FID against the real target class.

``--reference`` prints the calibration instead: the real-data floor (train split against test
split) and a noise ceiling (Gaussian noise images), under the same protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from training import data, image_pairs, metrics
from training.feature_networks import load_feature_network
from zoo.kinds import EvaluationRequest, kind_of_model

SAMPLE_BATCH = 500


# --- Generated images from any of the three model-path kinds ------------------------------------


def load_model(model_path):
    """``(model, kind)``: the Keras model of a run dir or .keras file, or the loaded SavedModel."""
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return tf.saved_model.load(model_path), "saved_model"
    path = os.path.join(model_path, "model.keras") if os.path.isdir(model_path) else model_path
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No model at {model_path}: pass a run directory (with model.keras), a .keras file, "
            "or a SavedModel version directory (with saved_model.pb)."
        )
    import keras

    import zoo  # noqa: F401  (registers the zoo's classes)

    return keras.saving.load_model(path), "run_dir" if os.path.isdir(model_path) else "keras"


def sampler_of(model):
    """``sample(num, seed) -> images in [-1, 1]`` of a model returned by ``load_model``."""
    if hasattr(model, "signatures"):
        signature = model.signatures["generate_from_seed"]

        def sample(num, seed):
            seeds = tf.range(seed * 10**7, seed * 10**7 + num, dtype=tf.int64)
            return signature(seed=seeds)["images"].numpy()

        return sample

    def sample(num, seed):
        noise = model.sample_latent(num, seed=seed)
        return np.asarray(model.generator(noise, training=False))

    return sample


def load_sampler(model_path):
    """``(sample(num, seed) -> images in [-1, 1], kind)`` for a run dir, .keras file or SavedModel."""
    model, kind = load_model(model_path)
    return sampler_of(model), kind


def batches_of(sample, num_samples, seed):
    for start in range(0, num_samples, SAMPLE_BATCH):
        yield sample(min(SAMPLE_BATCH, num_samples - start), seed + start)


def real_batches(dataset, split, num_samples, data_dir=None):
    images = data.load_images(dataset, split=split, batch_size=SAMPLE_BATCH, data_dir=data_dir,
                              shuffle=False, drop_remainder=False)
    count = 0
    for batch in images:
        batch = batch.numpy()[: num_samples - count]
        count += len(batch)
        yield batch
        if count >= num_samples:
            return


def noise_batches(image_shape, num_samples, seed):
    rng = np.random.default_rng(seed)
    for start in range(0, num_samples, SAMPLE_BATCH):
        count = min(SAMPLE_BATCH, num_samples - start)
        yield np.clip(rng.normal(0.0, 0.5, (count,) + tuple(image_shape)), -1, 1).astype("float32")


# --- Metrics ---------------------------------------------------------------------------------------


class FeatureSet:
    """Streaming statistics of a set of images under a feature network."""

    def __init__(self, network, batches):
        self.moments = metrics.RunningMoments()
        features, probabilities = [], []
        for batch in batches:
            f, p = network.features_and_probabilities(batch)
            self.moments.update(f)
            features.append(f.astype(np.float32))
            probabilities.append(p.astype(np.float32))
        self.features = np.concatenate(features)
        self.probabilities = np.concatenate(probabilities)

    @property
    def count(self):
        return len(self.features)


def compare(fake, real, network_name, seed=0):
    """FID, KID, IS, precision and recall of ``fake`` against ``real`` (both ``FeatureSet``)."""
    suffix = f"{network_name}_{_count_label(fake.count)}"
    fid = metrics.frechet_distance(fake.moments.mean, fake.moments.covariance,
                                   real.moments.mean, real.moments.covariance)
    kid_mean, kid_std = metrics.kernel_inception_distance(fake.features, real.features, seed=seed)
    is_mean, is_std = metrics.inception_score(fake.probabilities)
    precision, recall = metrics.precision_recall(real.features, fake.features)
    return {
        f"fid_{suffix}": float(fid),
        f"kid_{suffix}": float(kid_mean),
        f"kid_std_{suffix}": float(kid_std),
        f"is_{suffix}": float(is_mean),
        f"is_std_{suffix}": float(is_std),
        f"precision_{suffix}": float(precision),
        f"recall_{suffix}": float(recall),
    }


def _count_label(count):
    return f"{count // 1000}k" if count % 1000 == 0 and count >= 1000 else str(count)


def protocol(network, dataset, num_samples, reference_split, seed):
    return {"feature_network": network.name, "dataset": dataset, "reference_split": reference_split,
            "num_samples": num_samples, "seed": seed}


def _run_config(model_path):
    """The ``config.json`` of a run directory, or None for a ``.keras`` file or a SavedModel."""
    config_path = os.path.join(model_path, "config.json")
    if not os.path.isfile(config_path):
        return None
    with open(config_path) as f:
        return json.load(f)


def evaluate(model_path, dataset=None, num_samples=None, seed=0, data_dir=None, task=None,
             crop_size=None):
    """Metrics of the model at ``model_path`` on held-out data, as its kind of model measures
    them (``zoo.kinds``): FID and friends for unconditional GANs (``dataset`` defaults to
    fashion_mnist, ``num_samples`` to 10,000), translation metrics for image-to-image models
    (``training.translation_quality``), and so on.
    """
    started = time.perf_counter()
    model, path_kind = load_model(model_path)
    request = EvaluationRequest(model_path=model_path, dataset=dataset, num_samples=num_samples,
                                seed=seed, data_dir=data_dir, task=task, crop_size=crop_size,
                                run_config=_run_config(model_path))
    result = kind_of_model(model).evaluate(model, request)
    return {"model_path": os.path.abspath(model_path), "model_kind": path_kind, **result,
            "seconds": round(time.perf_counter() - started, 1)}


def reference(dataset="fashion_mnist", num_samples=10_000, seed=0, data_dir=None):
    """Calibration: real train images (floor) and Gaussian noise (ceiling) against the test split."""
    network = load_feature_network(dataset)
    real = FeatureSet(network, real_batches(dataset, "test", num_samples, data_dir))
    floor = FeatureSet(network, real_batches(dataset, "train", num_samples, data_dir))
    image_shape = data.get_dataset_spec(dataset).image_shape
    ceiling = FeatureSet(network, noise_batches(image_shape, num_samples, seed))
    return {
        "floor_real_train_vs_test": compare(floor, real, network.name, seed),
        "ceiling_gaussian_noise": compare(ceiling, real, network.name, seed),
        "protocol": protocol(network, dataset, num_samples, "test", seed),
    }


def log_path_for(model_path):
    """Where the JSONL log of ``model_path`` lives ("beside the model")."""
    model_path = os.path.abspath(model_path)
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return os.path.join(os.path.dirname(model_path), "evaluations.jsonl")
    if os.path.isdir(model_path):
        return os.path.join(model_path, "evaluations.jsonl")
    return os.path.join(os.path.dirname(model_path), "evaluations.jsonl")


def append_jsonl(path, record):
    with open(path, "a") as f:  # one short line per append: no partial records in practice
        f.write(json.dumps(record, sort_keys=True) + "\n")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="FID, KID, Inception Score and precision/recall of a generator, on the "
        "zoo's trained feature network.",
    )
    parser.add_argument("model_path", nargs="?",
                        help="run directory, .keras file, or SavedModel version directory")
    parser.add_argument("--dataset", default=None,
                        help="unconditional models: the real data set (default: fashion_mnist)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="default 10,000 (1,000, all the test images, for sneakers_and_boots)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--task", default=None,
                        help="image-to-image models: edges_to_photo or grey_to_colour (pix2pix; "
                        "default: the run directory's data set) or sneakers_and_boots (CycleGAN)")
    parser.add_argument("--crop-size", type=int, default=None,
                        help="paired tasks: tile size (default: the model's training size, else 64)")
    parser.add_argument("--reference", action="store_true",
                        help="print the real-data floor and noise ceiling instead")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.num_samples is not None and args.num_samples < 2:
            raise ValueError(f"--num-samples must be at least 2, got {args.num_samples}.")
        if args.crop_size is not None and args.crop_size < 1:
            raise ValueError(f"--crop-size must be positive, got {args.crop_size}.")
        if args.reference:
            result = reference(args.dataset or "fashion_mnist", args.num_samples or 10_000,
                               args.seed, args.data_dir)
        elif not args.model_path:
            raise ValueError("Give a MODEL_PATH, or --reference for the calibration figures.")
        else:
            result = evaluate(args.model_path, args.dataset, args.num_samples, args.seed,
                              args.data_dir, args.task, args.crop_size)
            append_jsonl(log_path_for(args.model_path), result)
    except (ValueError, FileNotFoundError, data.DatasetNotPreparedError,
            image_pairs.PhotoSourceUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
