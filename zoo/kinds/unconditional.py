"""Unconditional GANs (vanilla, DCGAN, WGAN, WGAN-GP, LSGAN): noise in, image out.

- **Data**: the image sets of ``training.data`` (Fashion-MNIST); the model takes their shape.
- **Grid**: samples of a fixed noise batch after each epoch (``training.callbacks.SampleGrid``).
- **Metrics**: FID, KID, Inception Score and precision/recall on the zoo's feature network
  (``training.evaluate``, maths in ``training.metrics``).
- **Signatures**: ``serving_default`` (``z`` float32 [batch, latent_dim] -> ``images`` in
  [-1, 1]) and ``generate_from_seed`` (``seed`` int64 [batch] -> ``images`` and
  ``images_png_bytes``; the noise of a seed comes from TensorFlow's stateless RNG, so a seed
  gives the same image in every process and server); and, for using a trained generator,
  ``inpaint`` (images + masks -> completed images, Yeh et al. 2016's latent search with Poisson
  blending, ``zoo.inpainting``), ``inpaint_bytes`` (PNG/JPEG image and mask strings -> PNG) and
  ``interpolate`` (two seeds and a step count -> images and PNG bytes, ``zoo.interpolation``),
  defined in ``export/inpainting.py``.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from export import inpainting as latent_signatures
from export.saved_model import encode_png_batch, latent_from_seeds
from training import data, evaluate
from training.callbacks import SampleGrid
from training.feature_networks import load_feature_network
from zoo.kinds import Kind

SIGNATURES = {"serving_default", "generate_from_seed", *latent_signatures.SIGNATURES}


class Unconditional(Kind):
    name = "unconditional"

    def datasets(self, spec):
        return sorted(data.DATASETS)

    def data_hyperparameters(self, spec, dataset):
        return {"image_shape": list(data.get_dataset_spec(dataset).image_shape)}

    def num_train_examples(self, spec, dataset, hyperparameters):
        return data.num_examples(dataset, "train")

    def training_data(self, config, run_dir, images_per_step):
        training = config["training"]
        dataset = data.load_images(
            config["dataset"], split="train", batch_size=images_per_step,
            data_dir=config["data_dir"], seed=training["seed"], repeat=True,
        )
        grid = SampleGrid(run_dir, seed=training["seed"],
                          log_dir=os.path.join(run_dir, "logs", "samples"))
        return dataset, (None, None), grid

    def evaluate(self, model, request):
        for option, value in (("--task", request.task), ("--crop-size", request.crop_size)):
            if value is not None:
                raise ValueError(f"{option} applies to image-to-image models only.")
        dataset = request.dataset or "fashion_mnist"
        num_samples = request.num_samples or 10_000
        network = load_feature_network(dataset)
        real = evaluate.FeatureSet(network, evaluate.real_batches(dataset, "test", num_samples,
                                                                  request.data_dir))
        fake = evaluate.FeatureSet(network, evaluate.batches_of(evaluate.sampler_of(model),
                                                                num_samples, request.seed))
        return {
            "metrics": evaluate.compare(fake, real, network.name, request.seed),
            "protocol": evaluate.protocol(network, dataset, num_samples, "test", request.seed),
        }

    def archive(self, model):
        generator = model.generator
        latent_dim, distribution = model.latent_dim, model.latent_distribution
        archive = keras.export.ExportArchive()
        # Endpoints track the variables they use; archive.track(generator) would store them twice.

        def serving_default(z):
            return {"images": generator(z, training=False)}

        def generate_from_seed(seed):
            images = generator(latent_from_seeds(seed, latent_dim, distribution), training=False)
            return {"images": images, "images_png_bytes": encode_png_batch(images)}

        archive.add_endpoint(
            "serving_default", serving_default,
            input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")],
        )
        archive.add_endpoint(
            "generate_from_seed", generate_from_seed,
            input_signature=[tf.TensorSpec([None], tf.int64, name="seed")],
        )
        return latent_signatures.add_latent_endpoints(archive, model)

    def signature_lines(self, spec):
        return ["`serving_default`: `z` float32 [batch, latent_dim] -> `images` in [-1, 1]",
                "`generate_from_seed`: `seed` int64 [batch] -> `images` and `images_png_bytes`",
                *latent_signatures.signature_lines()]

    def recognises(self, signature_names):
        return "generate_from_seed" in signature_names


KIND = Unconditional()
