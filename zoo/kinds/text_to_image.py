"""Text-to-image GANs (GAN-CLS / GAN-INT; StackGAN builds on them): a caption in, an image out.

- **Data**: the captioned data sets of ``training.captions`` (``shapes_captions``): batches of
  ``{"images", "text"}``, one of each image's captions drawn afresh every epoch.
- **Grid**: fixed held-out captions (seen and held-out attribute combinations) and a fixed noise
  batch, each image captioned in the grid (``training.text_to_image_quality.CaptionGrid``).
- **Metrics**: per-attribute accuracy of generated images under the attribute oracle on held-out
  captions and on held-out combinations, with the real images (ceiling) and images of shuffled
  captions (chance) beside them; R-precision through the text-image encoder; FID on the
  oracle's features (``training.text_to_image_quality``).
- **Signatures**: ``generate_from_text`` (``text`` string [batch] and ``seed`` int64 [batch] ->
  ``images``, ``images_png_bytes``; also ``serving_default``) and
  ``generate_from_text_default_seed`` (``text`` only, seed 0) (``export.text_to_image``).
"""

from __future__ import annotations

import os

from export.text_to_image import SIGNATURES, text_to_image_archive
from training import captions, data, text_to_image_quality
from zoo.kinds import Kind

CAPTIONED_DATASETS = ("shapes_captions",)


class TextToImage(Kind):
    name = "text_to_image"

    def datasets(self, spec):
        return list(CAPTIONED_DATASETS)

    def data_hyperparameters(self, spec, dataset):
        if dataset not in CAPTIONED_DATASETS:
            raise ValueError(f"{spec.name} trains on captioned images; choose one of "
                             f"{list(CAPTIONED_DATASETS)}, not {dataset!r}.")
        return {"image_shape": list(data.get_dataset_spec(dataset).image_shape)}

    def check_data_fits(self, spec, dataset, hyperparameters, data_hyperparameters):
        if list(hyperparameters["image_shape"]) != list(data_hyperparameters["image_shape"]):
            raise ValueError(f"{dataset} has images of shape {data_hyperparameters['image_shape']}; "
                             f"got image_shape={hyperparameters['image_shape']}.")

    def num_train_examples(self, spec, dataset, hyperparameters):
        return data.num_examples(dataset, "train")

    def training_data(self, config, run_dir, images_per_step):
        training = config["training"]
        batches = captions.load_captioned(
            config["dataset"], "train", images_per_step, config["data_dir"], shuffle=True,
            seed=training["seed"], repeat=True, drop_remainder=True)
        batches = batches.map(lambda batch: {"images": batch["images"], "text": batch["text"]})
        grid = text_to_image_quality.CaptionGrid(
            run_dir, text_to_image_quality.grid_captions(config["dataset"], config["data_dir"]),
            seed=training["seed"], log_dir=os.path.join(run_dir, "logs", "samples"))
        return batches, (None, None), grid

    def initialise_from(self, model, run_dir):
        from zoo.models.stackgan import init_stage1_from

        init_stage1_from(model, run_dir)

    def evaluate(self, model, request):
        for option, value in (("--task", request.task), ("--crop-size", request.crop_size)):
            if value is not None:
                raise ValueError(f"{option} does not apply to text-to-image models.")
        dataset = request.dataset or (request.run_config or {}).get("dataset") or CAPTIONED_DATASETS[0]
        return text_to_image_quality.evaluate_text_to_image(
            model, dataset, request.num_samples, request.seed, request.data_dir)

    def archive(self, model):
        return text_to_image_archive(model)

    def signature_lines(self, spec):
        return [
            "`generate_from_text` (and `serving_default`): `text` string [batch] and `seed` int64 "
            "[batch] -> `images` float32 [batch, H, W, 3] in [-1, 1] and `images_png_bytes` "
            "(`stackgan` also returns its Stage-I draw as `stage1_images` and "
            "`stage1_images_png_bytes`)",
            "`generate_from_text_default_seed`: `text` string [batch] -> the same, seed 0",
            "empty captions, captions with no known word or more than the encoder's `max_words` "
            "words, and text/seed batches of different sizes: INVALID_ARGUMENT",
        ]

    def recognises(self, signature_names):
        return SIGNATURES[0] in signature_names


KIND = TextToImage()
