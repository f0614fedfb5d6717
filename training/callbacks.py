"""Callbacks shared by every training run: sample and translation grids, resumable checkpoints."""

import os

import keras
import numpy as np
import tensorflow as tf

from training.files import atomic_save_model, atomic_write_json
from training.images import save_grid


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, render a fixed noise batch to ``samples/epoch_NNN.png`` and TensorBoard.

    The noise is drawn once from ``seed``, so successive grids show the same latent points.
    """

    def __init__(self, run_dir, num_samples=64, seed=0, log_dir=None):
        super().__init__()
        self.samples_dir = os.path.join(run_dir, "samples")
        self.num_samples = num_samples
        self.seed = seed
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else None
        self.noise = None

    def on_train_begin(self, logs=None):
        self.noise = self.model.sample_latent(self.num_samples, seed=self.seed)

    def on_epoch_end(self, epoch, logs=None):
        images = np.asarray(self.model.generator(self.noise, training=False))
        grid = save_grid(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"), images)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=epoch + 1)
            self.writer.flush()


class TranslationGrid(keras.callbacks.Callback):
    """After each epoch, translate fixed held-out examples into ``samples/epoch_NNN.png``.

    ``examples`` is one batch ``(a, b)``. Paired data gives rows *input, output, target*;
    unpaired data (CycleGAN) gives rows *a, G(a), F(G(a))* then *b, F(b), G(F(b))*.
    Grey images are shown as RGB next to colour ones.
    """

    def __init__(self, run_dir, examples, paired, log_dir=None):
        super().__init__()
        self.samples_dir = os.path.join(run_dir, "samples")
        self.examples = examples
        self.paired = paired
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        grid = save_grid(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"),
                         translation_rows(self.model, *self.examples, paired=self.paired), columns=3)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("translations", grid[None], step=epoch + 1)
            self.writer.flush()


def translation_rows(model, a, b, paired):
    """``(3 * N, H, W, C)`` images: one row of three per example (see ``TranslationGrid``)."""
    if paired:
        rows = [(x, y, target) for x, y, target in zip(a, model.translate(a), b)]
    else:
        half = max(1, len(a) // 2)
        a, b = a[:half], b[:half]
        fake_b, fake_a = model.translate(a, "a_to_b"), model.translate(b, "b_to_a")
        cycled_a, cycled_b = model.translate(fake_b, "b_to_a"), model.translate(fake_a, "a_to_b")
        rows = list(zip(a, fake_b, cycled_a)) + list(zip(b, fake_a, cycled_b))
    images = [np.asarray(image, np.float32) for row in rows for image in row]
    channels = max(image.shape[-1] for image in images)
    return np.stack([np.repeat(image, channels // image.shape[-1], axis=-1) for image in images])


class ResumableCheckpoint(keras.callbacks.Callback):
    """Save the whole model (weights, optimizer state, RNG state) after each epoch, atomically.

    Writes ``checkpoints/epoch_NNN.keras`` and then ``state.json`` naming it, keeping the
    ``keep`` newest checkpoints; ``latest_checkpoint(run_dir)`` finds where to resume.
    """

    def __init__(self, run_dir, keep=2):
        super().__init__()
        self.run_dir = run_dir
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch_{epoch + 1:03d}.keras"
        path = os.path.join(self.run_dir, "checkpoints", name)
        atomic_save_model(self.model, path)
        state = {"epoch": epoch + 1, "checkpoint": os.path.join("checkpoints", name)}
        state["logs"] = {k: float(v) for k, v in (logs or {}).items()}
        atomic_write_json(os.path.join(self.run_dir, "state.json"), state)
        self._prune()

    def _prune(self):
        directory = os.path.join(self.run_dir, "checkpoints")
        checkpoints = sorted(f for f in os.listdir(directory) if f.startswith("epoch_"))
        for old in checkpoints[: -self.keep]:
            os.remove(os.path.join(directory, old))


def latest_checkpoint(run_dir):
    """``(epoch, path)`` of the last completed epoch of a run, or ``None`` if it has none."""
    import json

    state_path = os.path.join(run_dir, "state.json")
    if not os.path.exists(state_path):
        return None
    with open(state_path) as f:
        state = json.load(f)
    return state["epoch"], os.path.join(run_dir, state["checkpoint"])


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training when any logged loss becomes NaN or infinite.

    ``keras.callbacks.TerminateOnNaN`` only watches a ``loss`` key; GANs log ``d_loss`` and
    ``g_loss``. The last checkpoint (the previous epoch) stays the resume point.
    """

    stopped = False

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if "loss" in k and not np.isfinite(float(v))}
        if bad:
            print(f"\nStopping: non-finite {bad} at batch {batch}; lower the learning rate or add a "
                  "stabiliser (--set r1_gamma=..., --set spectral_norm=true).")
            self.model.stop_training = True
            self.stopped = True
