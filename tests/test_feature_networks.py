"""The shipped evaluator on the real Fashion-MNIST test split, its sha256 pin, and Inception-v3."""

import json
import os
import shutil

import numpy as np
import pytest

from training import feature_networks as fn
from training import metrics
from training.data import load_images

REBUILD = "python -m training.feature_networks train fashion_mnist"


@pytest.fixture(scope="module")
def evaluator():
    return fn.load_feature_network("fashion_mnist")


@pytest.fixture(scope="module")
def real_test_images(fashion_mnist_data_dir):
    """The first 2,000 real test images and labels, in the split's stored order."""
    images, labels = [], []
    for x, y in load_images("fashion_mnist", split="test", batch_size=500, shuffle=False,
                            with_labels=True, drop_remainder=False,
                            data_dir=fashion_mnist_data_dir).take(4):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_shipped_evaluator_is_accurate_on_real_test_images(evaluator, real_test_images):
    images, labels = real_test_images
    assert images.shape == (2000, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
    accuracy = float(np.mean(evaluator.predict_classes(images) == labels))
    assert accuracy >= 0.88, accuracy
    # The sidecar written by the training run records the full-test-split figure.
    entry = fn.EVALUATORS["fashion_mnist"]
    with open(os.path.join(fn.REPO_ROOT, entry["path"]).replace(".keras", ".json")) as f:
        sidecar = json.load(f)
    assert sidecar["sha256"] == entry["sha256"]
    assert sidecar["test_accuracy"] >= 0.90 and sidecar["test_examples"] == 10_000
    assert abs(sidecar["test_accuracy"] - accuracy) < 0.03


def test_evaluator_features_and_probabilities(evaluator, real_test_images):
    images = real_test_images[0][:300]
    assert evaluator.name == "fmnist" and evaluator.feature_dim == 128
    features, probabilities = evaluator.features_and_probabilities(images)
    assert features.shape == (300, 128) and probabilities.shape == (300, 10)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Batching does not change the result; [N, 28, 28] is accepted for grey images.
    small = fn.FeatureNetwork("fmnist", evaluator._model, (28, 28, 1), 128, 10, batch_size=7)
    np.testing.assert_allclose(small.features(images[:20, ..., 0]), features[:20], atol=1e-4)
    np.testing.assert_allclose(evaluator.probabilities(images), probabilities, atol=1e-6)


def test_evaluator_separates_real_from_noise(evaluator, real_test_images):
    images = real_test_images[0]
    noise = np.clip(np.random.default_rng(0).normal(0, 0.5, images[:1000].shape), -1, 1)
    a, b = (metrics.RunningMoments().update(evaluator.features(x))
            for x in (images[:1000], images[1000:]))
    c = metrics.RunningMoments().update(evaluator.features(noise))
    real_vs_real = metrics.frechet_distance(a.mean, a.covariance, b.mean, b.covariance)
    real_vs_noise = metrics.frechet_distance(a.mean, a.covariance, c.mean, c.covariance)
    assert real_vs_noise > 20 * real_vs_real
    is_real, _ = metrics.inception_score(evaluator.probabilities(images), splits=2)
    assert is_real > 6  # 10 balanced classes, confidently classified


def test_evaluator_rejects_images_outside_its_range(evaluator):
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        evaluator.features(np.full((2, 28, 28, 1), 255.0, np.float32))
    with pytest.raises(ValueError, match="uint8"):
        evaluator.features(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        evaluator.features(np.zeros((2, 32, 32, 3), np.float32))


def test_sha256_mismatch_is_a_clear_error(tmp_path):
    shipped = os.path.join(fn.REPO_ROOT, fn.EVALUATORS["fashion_mnist"]["path"])
    tampered = tmp_path / "fashion_mnist_classifier.keras"
    shutil.copy(shipped, tampered)
    with open(tampered, "ab") as f:
        f.write(b"\0")
    with pytest.raises(fn.EvaluatorChecksumError) as error:
        fn.load_feature_network("fashion_mnist", path=str(tampered))
    message = str(error.value)
    assert "sha256 mismatch" in message and fn.sha256_of(str(tampered)) in message
    assert fn.EVALUATORS["fashion_mnist"]["sha256"] in message and REBUILD in message


def test_registry_mismatch_and_missing_file_are_clear_errors(monkeypatch, tmp_path):
    entry = dict(fn.EVALUATORS["fashion_mnist"], sha256="ab" * 32)
    monkeypatch.setitem(fn.EVALUATORS, "fashion_mnist", entry)
    with pytest.raises(fn.EvaluatorChecksumError, match="sha256 mismatch"):
        fn.load_feature_network("fashion_mnist")
    with pytest.raises(fn.FeatureNetworkError, match="missing") as error:
        fn.load_feature_network("fashion_mnist", path=str(tmp_path / "absent.keras"))
    assert REBUILD in str(error.value)
    with pytest.raises(fn.FeatureNetworkError, match="No evaluator registered"):
        fn.load_feature_network("cifar10")


# --- Inception-v3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_inception():
    return fn.load_inception_v3(weights=None, batch_size=2)


def test_inception_v3_shapes_with_random_weights(random_inception):
    images = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
    features, probabilities = random_inception.features_and_probabilities(images)  # 2 batches
    assert random_inception.name == "inception"
    assert features.shape == (3, 2048) and probabilities.shape == (3, 1000)
    assert np.isfinite(features).all() and (features >= 0).all()  # pooled post-ReLU maps
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    rgb = np.repeat(images[:2], 3, axis=-1)  # grey is replicated to RGB
    np.testing.assert_allclose(random_inception.features(rgb), features[:2], rtol=1e-4,
                               atol=1e-5)


def test_inception_v3_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(fname=None, origin=None, **kwargs):  # what get_file raises with no network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure "
                        "in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(fn.FeatureNetworkError) as error:
        fn.load_inception_v3()  # weights="imagenet"
    message = str(error.value)
    assert "could not be fetched" in message and fn.INCEPTION_WEIGHTS_FILE in message
    assert "weights=" in message
    with pytest.raises(fn.FeatureNetworkError, match="not found"):
        fn.load_inception_v3(weights=str(tmp_path / "missing.h5"))
