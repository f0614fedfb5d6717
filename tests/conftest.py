"""Shared fixtures: the real Fashion-MNIST, prepared once per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fashion_mnist_data_dir():
    """The tfds data dir holding a prepared fashion_mnist ($TFDS_DATA_DIR or tfds's default)."""
    from training.data import prepare

    return prepare("fashion_mnist", data_dir=os.environ.get("TFDS_DATA_DIR"))
