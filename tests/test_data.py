"""The data layer on the real Fashion-MNIST: exact upstream bytes, counts, range, labels, errors."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from training import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def registered_url_infos():
    """tfds's own registry of fashion_mnist's files (size, sha256), keyed by file name."""
    infos = tfds.builder("fashion_mnist").url_infos
    return {info.filename: info for info in infos.values()}


def split_stats(data_dir, split):
    count, low, high, labels = 0, np.inf, -np.inf, []
    for images, batch_labels in data.load_images(
        "fashion_mnist", split, batch_size=20_000, data_dir=data_dir, shuffle=False,
        drop_remainder=False, with_labels=True,
    ):
        assert images.dtype == "float32" and tuple(images.shape[1:]) == (28, 28, 1)
        count += images.shape[0]
        low, high = min(low, float(np.min(images))), max(high, float(np.max(images)))
        labels.append(batch_labels.numpy())
    return count, low, high, np.bincount(np.concatenate(labels), minlength=10)


@pytest.fixture(scope="module")
def train_stats(fashion_mnist_data_dir):
    return split_stats(fashion_mnist_data_dir, "train")


def test_rebuilt_files_equal_tfds_registered_checksums(fashion_mnist_data_dir):
    infos = registered_url_infos()
    assert sorted(infos) == sorted(os.listdir(data.DEBIAN_FASHION_MNIST_DIR))
    manual_dir = os.path.join(fashion_mnist_data_dir, "downloads", "manual", "fashion_mnist")
    for filename, info in infos.items():
        rebuilt = data.rebuild_upstream_gzip(os.path.join(data.DEBIAN_FASHION_MNIST_DIR, filename))
        assert len(rebuilt) == info.size
        assert hashlib.sha256(rebuilt).hexdigest() == info.checksum
        with open(os.path.join(manual_dir, filename), "rb") as f:
            assert f.read() == rebuilt


def test_tfds_checks_manual_files_rejecting_debian_header(tmp_path):
    """tfds really validates manual_dir files: Debian's own file (other header) is refused."""
    manual = tmp_path / "manual"
    manual.mkdir()
    for filename in registered_url_infos():
        (manual / filename).write_bytes(
            open(os.path.join(data.DEBIAN_FASHION_MNIST_DIR, filename), "rb").read())
    builder = tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(NonMatchingChecksumError):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))


def test_train_split_is_all_60000_images_in_minus_one_one(train_stats):
    count, low, high, _ = train_stats
    assert count == 60_000 == data.num_examples("fashion_mnist", "train")
    assert low == -1.0 and high == 1.0


def test_train_labels_are_the_real_ones(train_stats):
    assert train_stats[3].tolist() == [6_000] * 10


def test_test_split(fashion_mnist_data_dir):
    count, low, high, histogram = split_stats(fashion_mnist_data_dir, "test")
    assert count == 10_000 == data.num_examples("fashion_mnist", "test")
    assert low == -1.0 and high == 1.0 and histogram.tolist() == [1_000] * 10


def test_batches_shuffle_with_seed_and_repeat(fashion_mnist_data_dir):
    def first_batch(**kwargs):
        dataset = data.load_images("fashion_mnist", "test", batch_size=256,
                                   data_dir=fashion_mnist_data_dir, **kwargs)
        return next(iter(dataset)).numpy()

    seeded = first_batch(seed=3)
    assert seeded.shape == (256, 28, 28, 1)
    np.testing.assert_array_equal(seeded, first_batch(seed=3))
    assert not np.array_equal(seeded, first_batch(shuffle=False))
    repeated = data.load_images("fashion_mnist", "test", batch_size=4096, shuffle=False,
                                data_dir=fashion_mnist_data_dir, repeat=True)
    assert len(list(repeated.take(5))) == 5  # 2 full batches per epoch, so this crossed epochs


def test_prepare_is_idempotent_and_cli_reports_location(fashion_mnist_data_dir, capsys):
    assert data.prepare("fashion_mnist", fashion_mnist_data_dir) == fashion_mnist_data_dir
    assert data.main(["prepare", "fashion_mnist", "--data-dir", fashion_mnist_data_dir]) == 0
    out = capsys.readouterr().out
    assert "already prepared" in out and os.path.join("fashion_mnist", "3.0.1") in out
    assert data.main(["list", "--data-dir", fashion_mnist_data_dir]) == 0
    assert "fashion_mnist" in capsys.readouterr().out


def test_missing_debian_files_is_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    code = data.main(["prepare", "fashion_mnist", "--data-dir", str(tmp_path / "tfds")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "dataset-fashion-mnist" in err and "--download" in err
    with pytest.raises(data.DataUnavailableError):
        data.prepare("fashion_mnist", str(tmp_path / "tfds"))


def test_unknown_dataset_exits_2_naming_known_ones(capsys):
    assert data.main(["prepare", "celeba_hq_1024"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "fashion_mnist" in err
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.get_dataset_spec("nope")
    # The real process: exit code 2, one line, no traceback.
    result = subprocess.run([sys.executable, "-m", "training.data", "prepare", "nope"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown dataset 'nope'; known datasets: "
                                                  + ", ".join(sorted(data.DATASETS))]


def test_load_unprepared_raises_with_the_prepare_command(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError,
                       match="python -m training.data prepare fashion_mnist"):
        data.load_images("fashion_mnist", data_dir=str(tmp_path))


def test_registry_spec():
    spec = data.get_dataset_spec("fashion_mnist")
    assert spec.image_shape == (28, 28, 1) and spec.num_classes == 10
    assert isinstance(data.UnknownDatasetError("x"), ValueError)
    with pytest.raises(ValueError, match="already registered"):
        data.register_dataset(spec)
