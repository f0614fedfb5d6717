"""Image-to-image GANs (pix2pix on paired data, CycleGAN on two unpaired domains).

- **Data**: the translation data sets of ``training.image_pairs`` (``TRANSLATION_DATASETS``):
  square crops of real photos (paired) or two Fashion-MNIST classes (unpaired); a held-out
  split is scored after each epoch (``val_*`` columns of ``history.csv``).
- **Grid**: fixed held-out examples as *input, output, target* (paired) or *a, G(a), F(G(a))*
  (unpaired) rows (``training.callbacks.TranslationGrid``).
- **Metrics**: L1, PSNR, SSIM and saturation with baselines (paired), translation accuracy,
  cycle L1 and FID (unpaired): ``training.translation_quality``.
- **Signatures**: float and bytes translation signatures per direction (``export.translation``).
"""

from __future__ import annotations

import os

from export.translation import image_to_image_archive
from training import image_pairs, translation_quality
from training.callbacks import TranslationGrid
from zoo.kinds import Kind

VALIDATION_EXAMPLES = 256  # held-out examples scored after each epoch
GRID_EXAMPLES = 8


def square_size(hyperparameters):
    """The side of the square training crops of a translation model (its ``image_shape``)."""
    height, width = hyperparameters["image_shape"][:2]
    if height != width:
        raise ValueError(f"translation data sets give square crops; got image_shape "
                         f"{hyperparameters['image_shape']}.")
    return int(height)


class ImageToImage(Kind):
    name = "image_to_image"

    def datasets(self, spec):
        return image_pairs.translation_dataset_names(spec.paired)

    def data_hyperparameters(self, spec, dataset):
        translation = image_pairs.get_translation_dataset(dataset)
        if translation.paired != spec.paired:
            raise ValueError(
                f"{spec.name} trains on {'paired' if spec.paired else 'unpaired'} data and "
                f"{dataset!r} is {'paired' if translation.paired else 'unpaired'}; choose one of "
                f"{self.datasets(spec)}."
            )
        size = translation.image_size
        result = {"image_shape": [size, size, translation.output_channels]}
        if "input_channels" in spec.defaults:
            result["input_channels"] = translation.input_channels
        return result

    def check_data_fits(self, spec, dataset, hyperparameters, data_hyperparameters):
        """The channels must be the data set's (the crop size may be overridden)."""
        square_size(hyperparameters)
        targets, image_shape = data_hyperparameters["image_shape"][2], hyperparameters["image_shape"]
        if image_shape[2] != targets:
            raise ValueError(f"{dataset} has {targets}-channel targets; got image_shape={image_shape}.")
        inputs = data_hyperparameters.get("input_channels")
        if inputs is not None and hyperparameters["input_channels"] != inputs:
            raise ValueError(f"{dataset} has {inputs}-channel inputs; "
                             f"got input_channels={hyperparameters['input_channels']}.")

    def num_train_examples(self, spec, dataset, hyperparameters):
        translation = image_pairs.get_translation_dataset(dataset)
        return translation.num_examples("train", square_size(hyperparameters))

    def training_data(self, config, run_dir, images_per_step):
        training, data_dir = config["training"], config["data_dir"]
        translation = image_pairs.get_translation_dataset(config["dataset"])
        size = square_size(config["hyperparameters"])
        dataset = translation.load("train", images_per_step, size, seed=training["seed"],
                                   repeat=True, data_dir=data_dir)
        validation = translation.load("test", training["batch_size"], size, data_dir=data_dir,
                                      repeat=True)
        validation_steps = max(1, min(VALIDATION_EXAMPLES, translation.num_examples("test", size))
                               // training["batch_size"])
        examples = next(iter(translation.load("test", GRID_EXAMPLES, size, data_dir=data_dir)))
        grid = TranslationGrid(run_dir, examples, paired=translation.paired,
                               log_dir=os.path.join(run_dir, "logs", "samples"))
        return dataset, (validation, validation_steps), grid

    def evaluate(self, model, request):
        task = request.task
        if task is None and request.run_config is not None:  # a run directory names its data set
            dataset = request.run_config.get("dataset")
            task = dataset if dataset in translation_quality.TASKS else None
        return translation_quality.evaluate_translation(
            model, task, request.crop_size, request.num_samples, request.data_dir)

    def archive(self, model):
        return image_to_image_archive(model)

    def signature_lines(self, spec):
        images = "`images` float32 [batch, H, W, C] in [-1, 1] -> `images`"
        encoded = "`image_bytes` PNG/JPEG strings [batch] -> `image_png_bytes`"
        size = "H and W must be multiples of the generator's total stride (other sizes: INVALID_ARGUMENT)"
        if spec.paired:
            return [f"`serving_default`: {images}", f"`translate_bytes`: {encoded}", size]
        return [f"`a_to_b`, `b_to_a` (and `serving_default` = `a_to_b`): {images}",
                f"`a_to_b_bytes`, `b_to_a_bytes`: {encoded}", size]

    def recognises(self, signature_names):
        return bool({"translate_bytes", "a_to_b_bytes"} & set(signature_names))


KIND = ImageToImage()
