"""Distributed and mixed-precision training for ``training.train`` (docs/distributed.md).

- ``make_strategy``: the ``tf.distribute`` strategy named by ``--strategy``. A multi-worker
  run reads its cluster from ``TF_CONFIG`` (set on every host before the process starts).
- ``set_precision``: the Keras dtype policy (``mixed_float16`` with ``--mixed-precision``);
  models built afterwards compute in float16 with float32 variables, and
  ``zoo.base.TwoPlayerMixin.compile`` wraps both players' optimizers in a
  ``keras.optimizers.LossScaleOptimizer``.
- ``is_chief`` / ``worker_run_dir``: in a multi-worker run every worker executes the same
  program, including the saves (they read distributed variables collectively), but only the
  chief writes the run directory; the others write into a temporary directory of their own,
  removed at the end (``cleanup_worker_dir``), as TensorFlow's multi-worker guide prescribes.
- ``synchronize_batch_norm``: batch statistics over the global batch instead of each
  replica's (``keras.layers.BatchNormalization(synchronized=True)``).

The scaling of each player's gradients for the number of replicas lives with the models
(``zoo.base.TwoPlayerMixin.apply_player_gradients``), so any strategy gets it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def make_strategy(name):
    """The ``tf.distribute`` strategy for ``--strategy NAME`` (``ValueError`` if unknown)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")


def set_precision(mixed):
    """Set Keras's global dtype policy: ``mixed_float16`` if ``mixed`` else ``float32``."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, None, {}
    return resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict()


def is_chief(strategy):
    """True for the one process that writes the run directory: a single-host run, the
    ``chief`` task, or worker 0 of a cluster without a ``chief`` task."""
    task_type, task_id, cluster = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_run_dir(run_dir, strategy):
    """Where this process writes: ``run_dir`` for the chief, else a fresh temporary directory."""
    if is_chief(strategy):
        return run_dir
    task_type, task_id, _ = _task(strategy)
    return tempfile.mkdtemp(prefix=f"{os.path.basename(os.path.abspath(run_dir))}-{task_type}{task_id}-")


KEEP_WORKER_DIRS = "ZOO_KEEP_WORKER_DIRS"  # set to 1: keep non-chief outputs for inspection


def cleanup_worker_dir(write_dir, run_dir):
    """Remove a non-chief's temporary directory (never the run directory itself), unless the
    environment variable ``ZOO_KEEP_WORKER_DIRS`` is set (to compare workers' weights)."""
    if os.path.abspath(write_dir) != os.path.abspath(run_dir) and not os.environ.get(KEEP_WORKER_DIRS):
        shutil.rmtree(write_dir, ignore_errors=True)


def synchronize_batch_norm(model):
    """Make every ``BatchNormalization`` layer of ``model``'s networks compute its statistics
    over the global batch (all replicas) in training; returns how many layers it changed.

    With per-replica statistics a step on N replicas of B examples normalises each B alone,
    which is not the single-device step on N*B examples; synchronised, it is. The flag is part
    of each layer's config, so checkpoints and ``model.keras`` keep it; on one device it changes
    nothing.
    """
    changed = 0
    for network in getattr(model, "NETWORKS", ()):
        for layer in getattr(model, network)._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
                layer.synchronized = True
                changed += 1
    return changed


def shard_by_data(dataset):
    """Let a multi-worker strategy shard ``dataset`` by examples, not by files: the zoo's data
    sets are one file (or in memory), fewer than the workers, which FILE sharding refuses."""
    if dataset is None or not hasattr(dataset, "with_options"):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
