"""StackGAN (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image Synthesis with Stacked
Generative Adversarial Networks"): two text-to-image GANs stacked, the second refining the first.

Two registered models, trained one after the other, as in the paper (sec. 4):

- ``stackgan_stage1``: **conditioning augmentation** (sec. 3.1): phi(t) -> Dense + LeakyReLU(0.2)
  -> (mu, log sigma), ``c = mu + sigma * eps`` with eps ~ N(0, I), 128-d; the generator's loss
  adds ``kl_weight * KL(N(mu, sigma^2) || N(0, I))`` (lambda = 1, the paper's value; the
  authors' config uses 2). **Generator** (sec. 3.2, 4): [z, c] -> fully connected -> 4x4, then
  up-sampling blocks (nearest neighbour x2, 3x3 conv, BN, ReLU) halving the width, and a 3x3 conv
  with tanh, to ``image_shape / 4``. **Discriminator**: GAN-CLS's (``gan_cls``: stride-2 convs to
  4x4, phi(t) compressed to 128 and replicated, 1x1 conv, a logit) and its matching-aware loss
  over (real, right), (real, wrong), (fake, right); real images are box-downsampled 4x.
- ``stackgan``: Stage-II (sec. 3.3) holds a **frozen Stage-I** (its conditioning and generator;
  started from a ``stackgan_stage1`` run by ``--init-from RUN_DIR``) and trains its own
  conditioning augmentation (new fully connected layers, as in the paper), a generator whose
  encoder down-samples the Stage-I image (3x3 conv, ReLU, two 4x4 stride-2 convs + BN + ReLU),
  joins c replicated spatially (3x3 conv, BN, ReLU), then residual blocks (3x3 conv, BN, ReLU,
  3x3 conv, BN, skip) and up-sampling blocks to 4x the Stage-I resolution, and a text-conditioned
  GAN-CLS discriminator at that resolution. Stage-II takes no z (its randomness is Stage-I's).
- **Training** (sec. 4): Adam 2e-4, beta_1 0.5, batch 64, learning rate halved every 100 epochs
  (``halving_adam``: Keras's ``ExponentialDecay``, staircase, laid out over the run's epoch
  length by ``training.train``).

The noise a seed gives (``latent_dim``, the width ``export.text_to_image`` draws) is z and every
eps of the conditioning augmentations, so a (caption, seed) pair fixes both stages' images.

``refine_upsampled=True`` (off by default, as in the paper) makes Stage-II's generator draw a
residual over the bilinearly up-sampled Stage-I image (LAPGAN, Denton et al. 2015) instead of a
whole image: trained the paper's way for 4 epochs on this CPU, Stage-II lost the caption's colour
and shape (docs/text_to_image.md); the residual keeps them from the first step.

Deviations, for a 2-core CPU: resolutions 16 -> 64 (the paper: 64 -> 256; the 4x ratio kept);
widths ``generator_width=32`` / ``discriminator_width=32`` (the paper: 128 / 64, Stage-I's fully
connected layer 1024 wide); two residual blocks (the paper's 128x128 models; 4 at 256x256); the
128-d word-CNN text embedding of ``zoo.text_encoder`` (the paper: 1024-d char-CNN-RNN); far fewer
epochs (the paper: 600 per stage). The KL term is averaged over the 128 dimensions as in the
authors' code (the paper writes the divergence, a sum, which would weigh it 128 times more
against the adversarial loss). The frozen Stage-I runs in inference mode (its batch-norm moving
statistics) while Stage-II trains, so Stage-II learns on the Stage-I images it is later served
(the authors' code keeps batch statistics there).
"""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf
from keras import ops

from zoo.base import roll_global_batch
from zoo.layers import kernel_init
from zoo.models.gan_cls import (TextToImageGAN, compress, matching_aware_discriminator_loss,
                                text_conditioned_discriminator, text_encoder_for)
from zoo.registry import adam, register_model

SCALE = 4  # Stage-II's resolution over Stage-I's (the paper: 64 -> 256)
START = 4  # Stage-I's generator starts at 4x4, as in the paper
ENCODER_STEPS = 2  # Stage-II's stride-2 down-sampling of the Stage-I image (the paper: 64 -> 16)
LR_HALVING_EPOCHS = 100  # sec. 4: "the learning rate is decayed to 1/2 of its previous value every 100 epochs"
DEFAULT_STEPS_PER_EPOCH = 20_000 // 64  # shapes_captions' train split at batch 64 (runs: their own)


# --- Conditioning augmentation ---------------------------------------------------------------------


def kl_divergence(mu, log_sigma):
    """``KL(N(mu, sigma^2) || N(0, I))`` per dimension, averaged over dimensions and examples:
    ``mean(-log sigma + (sigma^2 + mu^2 - 1) / 2)`` (Zhang 2017, eq. 3; the mean as in the
    authors' code)."""
    return ops.mean(-log_sigma + 0.5 * (ops.exp(2.0 * log_sigma) + ops.square(mu) - 1.0))


def conditioning_augmentation(embedding_dim, condition_dim, name="conditioning"):
    """``phi(t) -> [mu, log_sigma]``, each ``(B, condition_dim)`` (Zhang 2017, sec. 3.1; the
    authors' code: one fully connected layer of ``2 * condition_dim`` and LeakyReLU(0.2), split
    in two; here two ``gan_cls.compress`` heads, the same function without a Lambda layer, which
    Keras will not reload in safe mode)."""
    embedding = keras.Input((embedding_dim,), name="embedding")
    mu = compress(embedding, condition_dim, f"{name}_mu")
    log_sigma = compress(embedding, condition_dim, f"{name}_log_sigma")
    return keras.Model(embedding, [mu, log_sigma], name=name)


def augment(mu, log_sigma, eps):
    """``c = mu + sigma * eps`` (the reparameterisation of Kingma & Welling 2014)."""
    return mu + ops.exp(log_sigma) * eps


# --- Networks --------------------------------------------------------------------------------------


def _bn_relu(x):
    return keras.layers.ReLU()(keras.layers.BatchNormalization()(x))


def _conv(x, filters, kernel_size=3, strides=1):
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                               kernel_initializer=kernel_init())(x)


def upsampling_block(x, filters):
    """Nearest-neighbour x2, 3x3 conv, BN, ReLU (Zhang 2017, sec. 4)."""
    return _bn_relu(_conv(keras.layers.UpSampling2D(2, interpolation="nearest")(x), filters))


def residual_block(x):
    """``ReLU(x + BN(conv3x3(ReLU(BN(conv3x3(x))))))`` (Zhang 2017, sec. 4; He et al. 2016)."""
    filters = x.shape[-1]
    y = keras.layers.BatchNormalization()(_conv(_bn_relu(_conv(x, filters)), filters))
    return keras.layers.ReLU()(keras.layers.Add()([x, y]))


def to_image(x, channels):
    return keras.layers.Conv2D(channels, 3, padding="same", activation="tanh",
                               kernel_initializer=kernel_init(), name="images")(x)


def _steps(low, high, what):
    steps = int(round(math.log2(high / low)))
    if steps < 1 or low * 2**steps != high:
        raise ValueError(f"{what}: {high} must be {low} times a power of 2.")
    return steps


def stage1_generator(image_size, channels, latent_dim, condition_dim, width, name="stage1_generator"):
    """``[z, c] -> images (image_size x image_size)``: fully connected to 4x4 x ``width * 2^(n-1)``,
    then ``n = log2(image_size / 4)`` up-sampling blocks halving the width (Zhang 2017, Fig. 2)."""
    steps = _steps(START, image_size, "Stage-I resolution")
    z = keras.Input((latent_dim,), name="z")
    c = keras.Input((condition_dim,), name="c")
    top = width * 2 ** (steps - 1)
    x = keras.layers.Concatenate()([z, c])
    x = keras.layers.Dense(START * START * top, use_bias=False, kernel_initializer=kernel_init())(x)
    x = _bn_relu(keras.layers.Reshape((START, START, top))(x))
    for step in range(steps - 1, -1, -1):
        x = upsampling_block(x, width * 2 ** max(step - 1, 0))
    return keras.Model([z, c], to_image(x, channels), name=name)


def stage2_generator(low_size, channels, condition_dim, width, residual_blocks,
                     refine_upsampled=False, name="generator"):
    """``[Stage-I images, c] -> images (SCALE x low_size)`` (Zhang 2017, sec. 3.3, Fig. 2): an
    encoder down-sampling ``ENCODER_STEPS`` times to ``width * 4`` channels, c replicated and
    joined, residual blocks, then up-sampling blocks halving the width.

    ``refine_upsampled`` (a deviation, off in the paper): the last conv predicts a residual added
    to the bilinearly up-sampled Stage-I image, clipped to [-1, 1], as LAPGAN's levels do (Denton
    et al. 2015, eq. 3); the paper's Stage-II draws the whole image (tanh)."""
    low = keras.Input((low_size, low_size, channels), name="stage1_images")
    c = keras.Input((condition_dim,), name="c")
    x = keras.layers.ReLU()(keras.layers.Conv2D(width, 3, padding="same",
                                                kernel_initializer=kernel_init())(low))
    for step in range(1, ENCODER_STEPS + 1):
        x = _bn_relu(_conv(x, width * 2**step, kernel_size=4, strides=2))
    size = low_size // 2**ENCODER_STEPS
    if size < 1 or size * 2**ENCODER_STEPS != low_size:
        raise ValueError(f"Stage-I resolution {low_size} must be a multiple of {2**ENCODER_STEPS}.")
    replicated = keras.layers.UpSampling2D(size)(keras.layers.Reshape((1, 1, condition_dim))(c))
    x = _bn_relu(_conv(keras.layers.Concatenate()([x, replicated]), width * 2**ENCODER_STEPS))
    for _ in range(residual_blocks):
        x = residual_block(x)
    filters = width * 2**ENCODER_STEPS
    for _ in range(_steps(size, SCALE * low_size, "Stage-II resolution")):
        filters = max(filters // 2, 1)
        x = upsampling_block(x, filters)
    if not refine_upsampled:
        return keras.Model([low, c], to_image(x, channels), name=name)
    residual = keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=kernel_init(),
                                   name="residual")(x)
    upsampled = keras.layers.UpSampling2D(SCALE, interpolation="bilinear")(low)
    images = keras.layers.Activation("hard_tanh", name="images")(
        keras.layers.Add()([upsampled, residual]))
    return keras.Model([low, c], images, name=name)


# --- Models ----------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
class StackGANStage1(TextToImageGAN):
    """StackGAN Stage-I: ``model(text)`` draws one low-resolution image per caption; ``fit``
    takes ``{"images": [B, H, W, C], "text": [B]}`` batches at the data's resolution, which the
    model box-downsamples to its own.

    Args:
        conditioning: ``phi(t) -> [mu, log_sigma]`` (``conditioning_augmentation``).
        generator: ``[z, c] -> images``.
        discriminator: ``[images, phi(t)] -> logits`` (GAN-CLS's).
        text_encoder: a frozen ``zoo.text_encoder.TextEncoder``.
        kl_weight: lambda of the KL term (the paper: 1).
        seed: seed of the model's noise.
    """

    NETWORKS = ("conditioning", "generator", "discriminator", "text_encoder")

    def __init__(self, conditioning, generator, discriminator, text_encoder, kl_weight=1.0,
                 seed=None, **kwargs):
        super().__init__(generator, discriminator, text_encoder, matching_aware=True,
                         interpolation=False, seed=seed, **kwargs)
        self.conditioning = conditioning
        self.kl_weight = float(kl_weight)
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    # --- Noise and generation --------------------------------------------------------------------

    @property
    def noise_widths(self):
        """Widths of the noise parts a seed gives, in order: z, then each stage's eps."""
        return (int(self.generator.input_shape[0][-1]), self.condition_dim)

    @property
    def condition_dim(self):
        return int(self.conditioning.output_shape[0][-1])

    @property
    def latent_dim(self):
        return sum(self.noise_widths)

    def split_noise(self, noise):
        bounds, start = [], 0
        for width in self.noise_widths:
            bounds.append(noise[:, start:start + width])
            start += width
        return bounds

    @staticmethod
    def condition(conditioning, embedding, eps, training):
        """``(c, mu, log_sigma)`` of one conditioning augmentation network."""
        mu, log_sigma = conditioning(embedding, training=training)
        return augment(mu, log_sigma, eps), mu, log_sigma

    def stages(self, embedding, noise, training=False):
        """``({"images": ...}, KL of the trained conditioning)`` for embeddings and noise."""
        z, eps = self.split_noise(noise)
        c, mu, log_sigma = self.condition(self.conditioning, embedding, eps, training)
        return {"images": self.generator([z, c], training=training)}, kl_divergence(mu, log_sigma)

    def generate_outputs(self, text, z=None, training=False):
        """``{"images": ...}`` (Stage-II adds ``stage1_images``) for captions ``text``; ``z`` is the
        whole noise vector (``latent_dim`` wide), fresh unless given."""
        embedding = self.embed(text)
        if z is None:
            z = self.sample_latent(ops.shape(embedding)[0])
        return self.stages(embedding, z, training=training)[0]

    def generate(self, text, z=None, training=False):
        return self.generate_outputs(text, z, training=training)["images"]

    def real_images(self, images):
        """The data's images at this stage's resolution (box filter)."""
        factor = int(images.shape[1]) // self.image_shape[0]
        return images if factor == 1 else ops.average_pool(images, factor, factor)

    # --- Training ----------------------------------------------------------------------------------

    @property
    def generator_variables(self):
        return self.conditioning.trainable_variables + self.generator.trainable_variables

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.kl_tracker, self.real_wrong_tracker]

    def train_step(self, data):
        """One D step on (real, right), (real, wrong), (fake, right) (GAN-CLS's loss), then one G
        step on ``-log D(fake, right) + kl_weight * KL`` (Zhang 2017, eqs. 5-6)."""
        images, text = self.unpack(data)
        real = self.real_images(images)
        right = self.embed(text)
        wrong = roll_global_batch(right)  # each image with its neighbour's caption
        noise = self.sample_latent(ops.shape(right)[0])
        with tf.GradientTape() as tape:
            fakes = self.stages(right, noise, training=True)[0]["images"]
            real_right = self.discriminator([real, right], training=True)
            real_wrong = self.discriminator([real, wrong], training=True)
            fake_right = self.discriminator([ops.stop_gradient(fakes), right], training=True)
            d_loss = matching_aware_discriminator_loss(real_right, real_wrong, fake_right)
        self.apply_player_gradients(self.d_optimizer, tape, d_loss, self.discriminator_variables)

        with tf.GradientTape() as tape:
            outputs, kl = self.stages(right, noise, training=True)
            adversarial = self.adversarial_loss.generator(
                self.discriminator([outputs["images"], right], training=True))
            g_loss = adversarial + self.kl_weight * kl
        self.apply_player_gradients(self.g_optimizer, tape, g_loss, self.generator_variables)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.kl_tracker.update_state(kl)
        self.real_wrong_tracker.update_state(ops.mean(ops.sigmoid(real_wrong)))
        return {m.name: m.result() for m in self.metrics}

    # --- Serialisation -----------------------------------------------------------------------------

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.serialize_networks(),
                "kl_weight": self.kl_weight, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class StackGAN(StackGANStage1):
    """StackGAN Stage-II over a frozen Stage-I: ``generate_outputs`` gives ``images`` (Stage-II)
    and ``stage1_images``; ``fit`` trains Stage-II's conditioning, generator and discriminator.

    Args:
        stage1_conditioning, stage1_generator: Stage-I's networks (frozen here).
        conditioning: Stage-II's own ``phi(t) -> [mu, log_sigma]``.
        generator: ``[Stage-I images, c] -> images``.
        discriminator, text_encoder, kl_weight, seed: as in ``StackGANStage1``.
    """

    NETWORKS = ("stage1_conditioning", "stage1_generator", "conditioning", "generator",
                "discriminator", "text_encoder")

    def __init__(self, stage1_conditioning, stage1_generator, conditioning, generator,
                 discriminator, text_encoder, kl_weight=1.0, seed=None, **kwargs):
        super().__init__(conditioning, generator, discriminator, text_encoder,
                         kl_weight=kl_weight, seed=seed, **kwargs)
        self.stage1_conditioning = stage1_conditioning
        self.stage1_generator = stage1_generator
        self.stage1_conditioning.trainable = False
        self.stage1_generator.trainable = False

    @property
    def noise_widths(self):
        stage1_condition = int(self.stage1_conditioning.output_shape[0][-1])
        return (int(self.stage1_generator.input_shape[0][-1]), stage1_condition, self.condition_dim)

    def stages(self, embedding, noise, training=False):
        z, eps1, eps2 = self.split_noise(noise)
        c1 = self.condition(self.stage1_conditioning, embedding, eps1, training=False)[0]
        low = self.stage1_generator([z, c1], training=False)  # frozen: inference mode
        c2, mu, log_sigma = self.condition(self.conditioning, embedding, eps2, training)
        images = self.generator([low, c2], training=training)
        return {"images": images, "stage1_images": low}, kl_divergence(mu, log_sigma)

    def initialise_from(self, run_dir):
        """Copy Stage-I (its conditioning, generator and text encoder) from a finished
        ``stackgan_stage1`` (or ``stackgan``) run (``--init-from``; Zhang 2017, sec. 4: Stage-II
        trains with Stage-I fixed). ValueError, in one line, if the run does not fit."""
        path = os.path.join(run_dir, "model.keras") if os.path.isdir(run_dir) else run_dir
        if not os.path.isfile(path):
            raise ValueError(f"no finished run at {run_dir} (no model.keras); train "
                             "stackgan_stage1 there first.")
        source = keras.saving.load_model(path, compile=False)
        if not isinstance(source, StackGANStage1):
            raise ValueError(f"{run_dir} holds a {source.name!r} model; --init-from needs a "
                             "stackgan_stage1 run.")
        if isinstance(source, StackGAN):
            pairs = ((source.stage1_conditioning, self.stage1_conditioning),
                     (source.stage1_generator, self.stage1_generator))
        else:
            pairs = ((source.conditioning, self.stage1_conditioning),
                     (source.generator, self.stage1_generator))
        pairs += ((source.text_encoder, self.text_encoder),)
        for theirs, ours in pairs:
            shapes = [tuple(v.shape) for v in theirs.weights], [tuple(v.shape) for v in ours.weights]
            if shapes[0] != shapes[1]:
                raise ValueError(f"the {theirs.name} of {run_dir} does not match this model's; set "
                                 "stage1_width, latent_dim, condition_dim and text_encoder to the run's.")
        if source.image_shape != self.stage1_generator.output_shape[1:]:
            raise ValueError(f"{run_dir} draws {source.image_shape} images; this model's Stage-I "
                             f"draws {self.stage1_generator.output_shape[1:]}.")
        for theirs, ours in pairs:
            ours.set_weights(theirs.get_weights())


def init_stage1_from(model, run_dir):
    """``--init-from`` for text-to-image models: Stage-II copies its frozen Stage-I from a run;
    the other text-to-image models train from scratch (ValueError)."""
    if not isinstance(model, StackGAN):
        raise ValueError(f"only stackgan (Stage-II) starts from another run (a stackgan_stage1 "
                         f"one); {model.name} trains from scratch: drop --init-from.")
    model.initialise_from(run_dir)


# --- Optimizers ------------------------------------------------------------------------------------


def halving_adam(steps_per_epoch=DEFAULT_STEPS_PER_EPOCH, learning_rate=2e-4):
    """Config of the paper's Adam (beta_1 0.5), its learning rate halved every 100 epochs."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=LR_HALVING_EPOCHS * steps_per_epoch, decay_rate=0.5,
        staircase=True)
    config = adam(keras.saving.serialize_keras_object(schedule), 0.5)
    return config


def optimizers_for_run(steps_per_epoch, epochs, learning_rate=None):
    """Both optimizers with the halving laid out over the run's epoch length (``epochs`` unused:
    the schedule does not depend on the run's length)."""
    rate = 2e-4 if learning_rate is None else learning_rate
    return {"g_optimizer": halving_adam(steps_per_epoch, rate),
            "d_optimizer": halving_adam(steps_per_epoch, rate)}


TRAINING = {"batch_size": 64, "g_optimizer": halving_adam(), "d_optimizer": halving_adam()}
PAPER = ("Zhang et al. 2017, StackGAN: Text to Photo-realistic Image Synthesis with Stacked "
         "Generative Adversarial Networks")


def _stage1_size(image_shape):
    image_shape = tuple(int(d) for d in image_shape)
    if image_shape[0] != image_shape[1] or image_shape[0] % SCALE:
        raise ValueError(f"StackGAN takes square images whose side is a multiple of {SCALE}; "
                         f"got image_shape={image_shape}.")
    return image_shape[0] // SCALE, image_shape[-1]


@register_model("stackgan_stage1", paper=PAPER, training=TRAINING, kind="text_to_image",
                run_optimizers=optimizers_for_run)
def stackgan_stage1(
    image_shape=(64, 64, 3),
    latent_dim=100,
    condition_dim=128,
    compressed_dim=128,
    generator_width=32,
    discriminator_width=32,
    kl_weight=1.0,
    text_encoder="shapes_captions",
    seed=None,
):
    """Stage-I for a data set of ``image_shape`` images; it draws ``image_shape / 4``.

    ``latent_dim``: z (the paper: 100); ``condition_dim``: c (the paper: 128); ``compressed_dim``:
    the discriminator's text projection (the paper: 128); ``text_encoder`` as in ``gan_cls``.
    """
    size, channels = _stage1_size(image_shape)
    encoder = text_encoder_for(text_encoder)
    return StackGANStage1(
        conditioning_augmentation(encoder.embedding_dim, condition_dim),
        stage1_generator(size, channels, latent_dim, condition_dim, generator_width,
                         name="generator"),
        text_conditioned_discriminator((size, size, channels), encoder.embedding_dim,
                                       compressed_dim, discriminator_width),
        encoder, kl_weight=kl_weight, seed=seed, name="stackgan_stage1",
    )


@register_model("stackgan", paper=PAPER, training=TRAINING, kind="text_to_image",
                run_optimizers=optimizers_for_run)
def stackgan(
    image_shape=(64, 64, 3),
    latent_dim=100,
    condition_dim=128,
    compressed_dim=128,
    stage1_width=32,
    generator_width=32,
    residual_blocks=2,
    discriminator_width=32,
    kl_weight=1.0,
    refine_upsampled=False,
    text_encoder="shapes_captions",
    seed=None,
):
    """Stage-II at ``image_shape`` over a Stage-I at ``image_shape / 4`` whose ``latent_dim``,
    ``condition_dim`` and ``stage1_width`` (its ``generator_width``) match the Stage-I run that
    ``--init-from`` copies in (until then Stage-I is untrained). ``refine_upsampled=True`` (a
    deviation, see ``stage2_generator``) makes Stage-II draw a residual over Stage-I's image."""
    size, channels = _stage1_size(image_shape)
    encoder = text_encoder_for(text_encoder)
    return StackGAN(
        conditioning_augmentation(encoder.embedding_dim, condition_dim, name="stage1_conditioning"),
        stage1_generator(size, channels, latent_dim, condition_dim, stage1_width),
        conditioning_augmentation(encoder.embedding_dim, condition_dim),
        stage2_generator(size, channels, condition_dim, generator_width, residual_blocks,
                         refine_upsampled),
        text_conditioned_discriminator(tuple(int(d) for d in image_shape), encoder.embedding_dim,
                                       compressed_dim, discriminator_width),
        encoder, kl_weight=kl_weight, seed=seed, name="stackgan",
    )
