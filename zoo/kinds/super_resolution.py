"""Super-resolution GANs (SRResNet, SRGAN; Ledig et al. 2017): 4x upscaling of photos.

- **Data**: ``training.super_resolution_data``: ``(LR, HR)`` pairs, LR the bicubic x4 downscale
  of random HR crops of real photos (``photos``, offline) or DIV2K (``div2k``, tfds); the held-out
  photos' tiles are scored after each epoch (``val_*`` columns of ``history.csv``).
- **Grid**: fixed held-out tiles as *bicubic, model, original* rows (``SuperResolutionGrid``).
- **Metrics**: PSNR and SSIM on the Y channel with a 4-pixel border cropped, and a texture
  measure, on the whole held-out photos, with bicubic beside: ``training.super_resolution_quality``.
- **Signatures**: ``upscale`` (float) and ``upscale_bytes`` (PNG/JPEG -> PNG) with a size limit
  (``export.super_resolution``).
- **--init-from**: SRGAN starts from an SRResNet run's generator (``zoo.models.srgan.init_generator_from``).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from training import super_resolution_data as sr_data
from training.images import save_grid
from zoo.kinds import Kind

VALIDATION_EXAMPLES = 256  # held-out tiles scored after each epoch
GRID_EXAMPLES = 6


def crop_size(hyperparameters):
    """The side of the HR training crops (the model's ``image_shape``)."""
    height, width = hyperparameters["image_shape"][:2]
    if height != width:
        raise ValueError(f"super-resolution trains on square HR crops; got image_shape "
                         f"{hyperparameters['image_shape']}.")
    return int(height)


def grid_rows(model, lr_images, hr_images):
    """``(3 N, H, W, 3)``: per example the bicubic upscale, the model's output and the original."""
    bicubic = sr_data.upscale_bicubic(lr_images).numpy()
    outputs = np.clip(np.asarray(model.upscale(lr_images)), -1.0, 1.0)
    return np.stack([image for row in zip(bicubic, outputs, np.asarray(hr_images)) for image in row])


class SuperResolutionGrid(keras.callbacks.Callback):
    """After each epoch, upscale fixed held-out LR tiles into ``samples/epoch_NNN.png``: rows of
    *bicubic, model, original HR*."""

    def __init__(self, run_dir, examples, log_dir=None):
        super().__init__()
        self.samples_dir = os.path.join(run_dir, "samples")
        self.examples = examples
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        grid = save_grid(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"),
                         grid_rows(self.model, *self.examples), columns=3)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("super_resolution", grid[None], step=epoch + 1)
            self.writer.flush()


class SuperResolution(Kind):
    name = "super_resolution"

    def datasets(self, spec):
        return list(sr_data.DATASETS)

    def data_hyperparameters(self, spec, dataset):
        if dataset not in sr_data.DATASETS:
            raise ValueError(f"{spec.name} trains on {list(sr_data.DATASETS)}, not {dataset!r}.")
        return {}

    def check_data_fits(self, spec, dataset, hyperparameters, data_hyperparameters):
        crop_size(hyperparameters)

    def num_train_examples(self, spec, dataset, hyperparameters):
        return sr_data.num_examples(dataset, "train", crop_size(hyperparameters))

    def training_data(self, config, run_dir, images_per_step):
        training, data_dir, dataset = config["training"], config["data_dir"], config["dataset"]
        size = crop_size(config["hyperparameters"])
        train = sr_data.load(dataset, "train", images_per_step, size, seed=training["seed"],
                             repeat=True, data_dir=data_dir)
        validation = sr_data.load(dataset, "test", training["batch_size"], size, repeat=True,
                                  data_dir=data_dir)
        held_out = min(VALIDATION_EXAMPLES, sr_data.num_examples(dataset, "test", size))
        validation_steps = max(1, held_out // training["batch_size"])
        examples = next(iter(sr_data.load(dataset, "test", GRID_EXAMPLES, size, data_dir=data_dir)))
        grid = SuperResolutionGrid(run_dir, examples, log_dir=os.path.join(run_dir, "logs", "samples"))
        return train, (validation, validation_steps), grid

    def initialise_from(self, model, run_dir):
        from zoo.models.srgan import init_generator_from

        init_generator_from(model, run_dir)

    def evaluate(self, model, request):
        from training import super_resolution_quality

        return super_resolution_quality.evaluate_super_resolution(model, request.num_samples)

    def archive(self, model):
        from export.super_resolution import super_resolution_archive

        return super_resolution_archive(model)

    def signature_lines(self, spec):
        from export.super_resolution import MAX_INPUT_PIXELS

        return [
            "`upscale` (and `serving_default`): `images` float32 [batch, H, W, 3] in [-1, 1], any "
            "H and W -> `images` [batch, 4H, 4W, 3]",
            "`upscale_bytes`: `image_bytes` PNG/JPEG strings [batch] of one size -> `image_png_bytes` "
            "(4x PNG)",
            f"inputs above {MAX_INPUT_PIXELS} pixels (H x W, set at export) get INVALID_ARGUMENT",
        ]

    def recognises(self, signature_names):
        return "upscale_bytes" in set(signature_names)


KIND = SuperResolution()
