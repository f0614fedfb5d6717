"""The data layer of the zoo: a registry of image data sets, offline preparation, tf.data loading.

Every data set is a tensorflow-datasets (tfds) builder. ``prepare`` builds it, from local files
when the machine has them (no internet needed) or through tfds's own download; ``load_images``
reads it back as batches of float32 images in [-1, 1], the range of the generators' ``tanh``.

    python -m training.data list
    python -m training.data prepare fashion_mnist [--data-dir D] [--download]

Fashion-MNIST: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017 (MIT licence). Offline, it is
rebuilt from the Debian package ``dataset-fashion-mnist``, whose gzip files differ from
upstream's only in their 10-byte header: restoring that header gives upstream's bytes, which
tfds then serves from its manual dir after checking its own registered sha256.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import struct
import sys
import time
from typing import Callable

import tensorflow_datasets as tfds

from training.files import atomic_write_bytes

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
SHUFFLE_BUFFER = 10_000


class UnknownDatasetError(ValueError):
    """A data set name that is not registered."""


class DataUnavailableError(RuntimeError):
    """The files a data set is prepared from are not on this machine (and no download asked)."""


class DatasetNotPreparedError(RuntimeError):
    """``load_images`` on a data set that ``prepare`` has not built in that data dir."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered data set.

    ``prepare(builder)`` builds the tfds ``builder`` offline from files on this machine, or
    raises ``DataUnavailableError`` naming how to get them.
    """

    name: str
    tfds_name: str
    image_shape: tuple[int, int, int]
    num_examples: dict[str, int]
    description: str
    prepare: Callable[[tfds.core.DatasetBuilder], None]
    num_classes: int | None = None
    citation: str = ""
    cache: bool = False  # keep decoded uint8 images in memory (small data sets only)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to ``DATASETS`` (one call per data set)."""
    if spec.name in DATASETS:
        raise ValueError(f"A dataset named {spec.name!r} is already registered.")
    DATASETS[spec.name] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registered spec of ``name``; ``UnknownDatasetError`` lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}"
        ) from None


def num_examples(name: str, split: str = "train") -> int:
    """Number of examples in ``split`` of data set ``name``."""
    counts = get_dataset_spec(name).num_examples
    if split not in counts:
        raise ValueError(f"{name} has no split {split!r}; splits: {', '.join(counts)}")
    return counts[split]


# --- Preparation --------------------------------------------------------------------------------


def _builder(spec: DatasetSpec, data_dir: str | None):
    return tfds.builder(spec.tfds_name, data_dir=data_dir)


def _builder_is_prepared(builder) -> bool:
    # Checking the folder first avoids tfds's warning about a missing variant folder.
    return builder.data_path.exists() and builder.is_prepared()


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    """Whether ``prepare(name, data_dir)`` has already built the data set."""
    return _builder_is_prepared(_builder(get_dataset_spec(name), data_dir))


def prepare(name: str, data_dir: str | None = None, download: bool = False) -> str:
    """Build data set ``name`` into ``data_dir`` (default: tfds's, honouring ``TFDS_DATA_DIR``).

    Offline from local files, or with ``download=True`` through tfds's normal download. Returns
    at once if already prepared. Returns the data dir to pass to ``load_images``.
    """
    spec = get_dataset_spec(name)
    builder = _builder(spec, data_dir)
    if not _builder_is_prepared(builder):
        if download:
            builder.download_and_prepare()
        else:
            spec.prepare(builder)
    return os.fspath(builder.data_dir_root)


def _sha256(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Upstream's gzip MTIME per file prefix (Debian zeroed the header; the deflate streams are equal).
_FASHION_MNIST_GZIP_MTIME = {"train": 1504176606, "t10k": 1504176627}


def rebuild_upstream_gzip(debian_path: str) -> bytes:
    """Upstream's ``.gz`` bytes from Debian's: same deflate stream, upstream's gzip header.

    Upstream's header is ``1f 8b 08 08`` (FNAME flag), MTIME, ``00 03``, then the file name and a
    NUL; Debian's is the plain 10-byte header.
    """
    filename = os.path.basename(debian_path)
    with open(debian_path, "rb") as f:
        data = f.read()
    if data[:3] != b"\x1f\x8b\x08" or data[3] != 0:
        raise DataUnavailableError(f"{debian_path} does not start with a plain gzip header")
    mtime = _FASHION_MNIST_GZIP_MTIME[filename.split("-")[0]]
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03"
    return header + filename.removesuffix(".gz").encode() + b"\x00" + data[10:]


def _prepare_fashion_mnist(builder) -> None:
    """Rebuild upstream's files into ``<data_dir>/downloads/manual/fashion_mnist`` and build."""
    source = DEBIAN_FASHION_MNIST_DIR
    fix = (
        "install the Debian package with `sudo apt-get install dataset-fashion-mnist`, "
        "or pass --download (download=True) to fetch it from the internet with tfds"
    )
    if not os.path.isdir(source):
        raise DataUnavailableError(f"fashion_mnist: {source}/ not found; {fix}")
    manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual", builder.name)
    for info in builder.url_infos.values():  # tfds's registered size and sha256 per file
        target = os.path.join(manual_dir, info.filename)
        if _sha256(target) == info.checksum:
            continue  # rebuilt by an earlier run
        debian = os.path.join(source, info.filename)
        if not os.path.isfile(debian):
            raise DataUnavailableError(f"fashion_mnist: {debian} not found; {fix}")
        data = rebuild_upstream_gzip(debian)
        if hashlib.sha256(data).hexdigest() != info.checksum:
            raise DataUnavailableError(
                f"fashion_mnist: {debian} does not rebuild upstream's {info.filename} "
                "(sha256 differs from tfds's); pass --download (download=True) to fetch it"
            )
        atomic_write_bytes(target, data)
    # tfds takes each registered file from manual_dir by name and checks its sha256 itself.
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )


register_dataset(
    DatasetSpec(
        name="fashion_mnist",
        tfds_name="fashion_mnist",
        image_shape=(28, 28, 1),
        num_examples={"train": 60_000, "test": 10_000},
        num_classes=10,
        description="Zalando article images, 28x28 grey, 10 classes (Xiao et al. 2017)",
        citation="Xiao, Rasul, Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
        "Machine Learning Algorithms. arXiv:1708.07747, 2017.",
        prepare=_prepare_fashion_mnist,
        cache=True,
    )
)


# Captioned data sets (text-to-image) register themselves here (``training.captions``).
from training import captions as _captions  # noqa: E402,F401


# --- Loading ------------------------------------------------------------------------------------


def load_images(
    name: str,
    split: str = "train",
    batch_size: int = 64,
    data_dir: str | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    drop_remainder: bool = True,
    repeat: bool = False,
    with_labels: bool = False,
):
    """Batches ``[B, H, W, C]`` float32 in [-1, 1] (``(images, labels)`` if ``with_labels``).

    Never downloads: raises ``DatasetNotPreparedError`` if ``prepare`` has not run on ``data_dir``.
    """
    import tensorflow as tf

    spec = get_dataset_spec(name)
    if not _builder_is_prepared(_builder(spec, data_dir)):
        option = f" --data-dir {data_dir}" if data_dir else ""
        raise DatasetNotPreparedError(
            f"{name} is not prepared in {data_dir or 'the default tfds data dir'}; "
            f"run `python -m training.data prepare {name}{option}` first"
        )
    dataset = tfds.load(
        spec.tfds_name, split=split, data_dir=data_dir, download=False, as_supervised=True,
        shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    if spec.cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def scale(images, labels):
        images = tf.cast(images, tf.float32) / 127.5 - 1.0
        return (images, labels) if with_labels else images

    return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# --- Command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.data",
        description="Prepare and list the zoo's data sets (tensorflow-datasets builders).",
        epilog="Example: python -m training.data prepare fashion_mnist  "
        "(offline from the Debian package dataset-fashion-mnist; --download to use the internet)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the registered data sets and whether they are prepared")
    prep = commands.add_parser(
        "prepare",
        help="build a data set so training can load it offline",
        description="Build a data set into the tfds data dir. Offline from local files unless "
        "--download; does nothing if already prepared.",
    )
    prep.add_argument("name", help=f"one of: {', '.join(sorted(DATASETS))}")
    for sub in (prep, commands.choices["list"]):
        sub.add_argument("--data-dir", default=None,
                         help="tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    prep.add_argument("--download", action="store_true",
                      help="fetch the data from the internet with tfds instead of local files")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for spec in DATASETS.values():
            status = "prepared" if is_prepared(spec.name, args.data_dir) else "not prepared"
            splits = ", ".join(f"{k} {v:,}" for k, v in spec.num_examples.items())
            shape = "x".join(map(str, spec.image_shape))
            print(f"{spec.name:16} {shape:9} {splits:26} {status:13} {spec.description}")
        return 0
    try:
        spec = get_dataset_spec(args.name)
        already = is_prepared(spec.name, args.data_dir)
        started = time.perf_counter()
        prepare(spec.name, args.data_dir, download=args.download)
    except UnknownDatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DataUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    where = _builder(spec, args.data_dir).data_dir
    verb = "was already prepared" if already else "prepared"
    print(f"{spec.name} {verb} in {where} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    # Run the imported module's main: data sets defined elsewhere (training.captions) register
    # into ``training.data``, not into this ``__main__`` copy.
    from training import data as _data

    sys.exit(_data.main())
