"""GAN-CLS / GAN-INT (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis").

A DCGAN conditioned on a sentence embedding phi(t) from a frozen text encoder
(``zoo.text_encoder.TextEncoder``, trained beforehand by ``training.text_encoder``):

- **Generator** (sec. 4.1): phi(t) is compressed by a fully connected layer and LeakyReLU(0.2) to
  ``compressed_dim`` (128 in the paper), concatenated to z (100-d N(0, 1)) and decoded by the
  DCGAN generator 4x4 -> 64x64 (transposed 4x4 stride-2 convs, batch norm, ReLU, tanh).
- **Discriminator** (sec. 4.1): DCGAN stride-2 convs with batch norm and LeakyReLU(0.2) down to
  4x4; phi(t) compressed again (Dense + LeakyReLU), replicated spatially and concatenated
  depth-wise at 4x4, then a 1x1 conv (+ BN, LeakyReLU) and a 4x4 conv to one logit.
- **Matching-aware discriminator, GAN-CLS** (Algorithm 1): D sees (real image, right text),
  (real image, wrong text) and (fake image, right text); line 10:
  ``L_D = log s_r + (log(1 - s_w) + log(1 - s_f)) / 2``, maximised, here minimised in its
  softplus form (``matching_aware_discriminator_loss``); G minimises ``-log s_f``
  (non-saturating, line 12). The wrong text of an example is the caption of the next example
  of the batch (the batch rolled by one), a mismatch unless both share all four attributes.
- **GAN-INT** (sec. 4.3): G also trains on interpolated embeddings ``beta t1 + (1 - beta) t2``,
  beta = 0.5, of two captions of the batch (t2 = the batch rolled by one), which D only judges;
  ``interpolation=False`` turns it off, ``matching_aware=False`` gives the plain conditional GAN.
- **Training** (sec. 5): Adam lr 2e-4, beta_1 0.5, batch 64.

Deviations, for a 2-core CPU: widths ``generator_width=32`` / ``discriminator_width=32``
(the paper's code: 128 / 64), a 128-d word-CNN embedding instead of the 1024-d char-CNN-RNN
(``zoo.text_encoder``), and far fewer epochs (docs/text_to_image.md).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from zoo import losses as zoo_losses
from zoo.base import TwoPlayerMixin, replica_share, roll_global_batch
from zoo.layers import kernel_init
from zoo.models.dcgan import num_resolution_steps
from zoo.registry import adam, register_model
from zoo.text_encoder import TextEncoder


def matching_aware_discriminator_loss(real_right_logits, real_wrong_logits, fake_right_logits):
    """``-log s_r - (log(1 - s_w) + log(1 - s_f)) / 2`` with ``s = sigma(logits)`` (Reed 2016,
    Algorithm 1, line 10, negated to be minimised)."""
    return (ops.mean(ops.softplus(-real_right_logits))
            + 0.5 * (ops.mean(ops.softplus(real_wrong_logits))
                     + ops.mean(ops.softplus(fake_right_logits))))


def compress(embedding, units, name):
    """Reed 2016's text projection: Dense + LeakyReLU(0.2)."""
    x = keras.layers.Dense(units, kernel_initializer=kernel_init(), name=f"{name}_dense")(embedding)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_leaky")(x)


def text_conditioned_generator(image_shape, latent_dim, embedding_dim, compressed_dim, width,
                               name="generator"):
    """``[z, phi(t)] -> images`` in [-1, 1] (Reed 2016, Fig. 2 left)."""
    height, _, channels = image_shape
    steps = num_resolution_steps(height)
    start = height // 2**steps
    z = keras.Input((latent_dim,), name="z")
    embedding = keras.Input((embedding_dim,), name="embedding")
    x = keras.layers.Concatenate()([z, compress(embedding, compressed_dim, "text")])
    top = width * 2 ** (steps - 1)
    x = keras.layers.Dense(start * start * top, use_bias=False, kernel_initializer=kernel_init())(x)
    x = keras.layers.Reshape((start, start, top))(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for step in range(steps - 1, 0, -1):
        x = keras.layers.Conv2DTranspose(width * 2 ** (step - 1), 4, strides=2, padding="same",
                                         use_bias=False, kernel_initializer=kernel_init())(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    images = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh",
                                          kernel_initializer=kernel_init(), name="images")(x)
    return keras.Model([z, embedding], images, name=name)


def text_conditioned_discriminator(image_shape, embedding_dim, compressed_dim, width,
                                   name="discriminator"):
    """``[images, phi(t)] -> logits (B, 1)``: the embedding joins at 4x4 (Reed 2016, Fig. 2 right)."""
    steps = num_resolution_steps(image_shape[0])
    images = keras.Input(tuple(image_shape), name="images")
    embedding = keras.Input((embedding_dim,), name="embedding")
    x = images
    for step in range(steps):
        x = keras.layers.Conv2D(width * 2**step, 4, strides=2, padding="same", use_bias=step == 0,
                                kernel_initializer=kernel_init())(x)
        if step > 0:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    size = image_shape[0] // 2**steps
    text = compress(embedding, compressed_dim, "text")
    text = keras.layers.Reshape((1, 1, compressed_dim))(text)
    text = keras.layers.UpSampling2D(size)(text)  # replicate spatially
    x = keras.layers.Concatenate()([x, text])
    x = keras.layers.Conv2D(width * 2 ** (steps - 1), 1, use_bias=False,
                            kernel_initializer=kernel_init())(x)
    x = keras.layers.LeakyReLU(0.2)(keras.layers.BatchNormalization()(x))
    logits = keras.layers.Conv2D(1, size, padding="valid", kernel_initializer=kernel_init())(x)
    logits = keras.layers.Reshape((1,), name="logits")(logits)
    return keras.Model([images, embedding], logits, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class TextToImageGAN(TwoPlayerMixin, keras.Model):
    """GAN-CLS / GAN-INT: ``model(text)`` draws one image per caption; ``fit`` takes batches of
    ``{"images": [B, H, W, C] in [-1, 1], "text": [B] strings}``.

    Args:
        generator: ``[z, embedding] -> images``.
        discriminator: ``[images, embedding] -> logits``.
        text_encoder: a ``zoo.text_encoder.TextEncoder``; frozen (not trained here).
        matching_aware: GAN-CLS's (real, wrong text) term (Algorithm 1).
        interpolation: GAN-INT's generator term on interpolated embeddings.
        interpolation_beta: beta of ``beta t1 + (1 - beta) t2`` (paper: 0.5).
        seed: seed of the model's noise.
    """

    NETWORKS = ("generator", "discriminator", "text_encoder")

    def __init__(self, generator, discriminator, text_encoder, matching_aware=True,
                 interpolation=True, interpolation_beta=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.text_encoder = text_encoder
        self.text_encoder.trainable = False
        self.matching_aware = bool(matching_aware)
        self.interpolation = bool(interpolation)
        self.interpolation_beta = float(interpolation_beta)
        if not 0.0 <= self.interpolation_beta <= 1.0:
            raise ValueError(f"interpolation_beta must be in [0, 1], got {interpolation_beta}.")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.adversarial_loss = zoo_losses.get_loss("non_saturating")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_wrong_tracker = keras.metrics.Mean(name="d_real_wrong_prob")
        self.built = True

    # --- Generation ----------------------------------------------------------------------------

    @property
    def latent_dim(self):
        return int(self.generator.input_shape[0][-1])

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.generator.output_shape[1:])

    def embed(self, text):
        return self.text_encoder(text, training=False)

    def sample_latent(self, batch_size, seed=None):
        """N(0, 1) codes; in a replica, this replica's rows of the global batch's draw."""
        seed = self.seed_generator if seed is None else seed
        return replica_share(lambda count: keras.random.normal((count, self.latent_dim), seed=seed),
                             batch_size)

    def generate(self, text, z=None, training=False):
        """Images ``[B, H, W, C]`` for captions ``text`` [B] (fresh noise unless ``z`` is given)."""
        embedding = self.embed(text)
        if z is None:
            z = self.sample_latent(ops.shape(embedding)[0])
        return self.generator([z, embedding], training=training)

    def generate_outputs(self, text, z=None, training=False):
        """What the ``generate_from_text`` signature returns besides PNGs: ``{"images": ...}``
        (StackGAN adds its Stage-I images)."""
        return {"images": self.generate(text, z, training=training)}

    def call(self, text, training=False):
        return self.generate(text, training=training)

    # --- Training ------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.real_wrong_tracker]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skip Keras's build from a first batch when every network is built (always, here).

        Under a ``tf.distribute`` strategy Keras 3 builds by reducing the first batch with MEAN
        across replicas (``keras/src/backend/tensorflow/trainer.py``), which TF cannot do for the
        string captions; the networks here are built when constructed, so nothing is lost.
        """
        if not all(network.built for network in (self.generator, self.discriminator,
                                                  self.text_encoder)):
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @staticmethod
    def unpack(data):
        batch = data[0] if isinstance(data, (tuple, list)) else data
        if not isinstance(batch, dict) or not {"images", "text"} <= set(batch):
            raise ValueError("text-to-image models train on {'images': ..., 'text': ...} batches.")
        return batch["images"], batch["text"]

    def train_step(self, data):
        """Algorithm 1 of Reed 2016: one D step (lines 3-10), then one G step (lines 11-12)."""
        images, text = self.unpack(data)
        right = self.embed(text)
        wrong = roll_global_batch(right)  # each image with its neighbour's caption
        batch_size = ops.shape(right)[0]
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fakes = self.generator([z, right], training=True)
            real_right = self.discriminator([images, right], training=True)
            fake_right = self.discriminator([ops.stop_gradient(fakes), right], training=True)
            if self.matching_aware:
                real_wrong = self.discriminator([images, wrong], training=True)
                d_loss = matching_aware_discriminator_loss(real_right, real_wrong, fake_right)
            else:
                real_wrong = real_right
                d_loss = self.adversarial_loss.discriminator(real_right, fake_right)
        self.apply_player_gradients(self.d_optimizer, tape, d_loss, self.discriminator_variables)

        with tf.GradientTape() as tape:
            fakes = self.generator([z, right], training=True)
            g_loss = self.adversarial_loss.generator(self.discriminator([fakes, right], training=True))
            if self.interpolation:
                beta = self.interpolation_beta
                mixed = beta * right + (1.0 - beta) * wrong
                mixed_fakes = self.generator([self.sample_latent(batch_size), mixed], training=True)
                g_loss += self.adversarial_loss.generator(
                    self.discriminator([mixed_fakes, mixed], training=True))
        self.apply_player_gradients(self.g_optimizer, tape, g_loss, self.generator_variables)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.real_wrong_tracker.update_state(ops.mean(ops.sigmoid(real_wrong)))
        return {m.name: m.result() for m in self.metrics}

    # --- Serialisation ---------------------------------------------------------------------------

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self.serialize_networks(),
                "matching_aware": self.matching_aware, "interpolation": self.interpolation,
                "interpolation_beta": self.interpolation_beta, "seed": self.seed}


def text_encoder_for(text_encoder):
    """A frozen ``TextEncoder``: the shipped one of a data set (by name), the text tower of a
    ``DualEncoder`` ``.keras`` file (by path), or a fresh untrained one over the shapes
    vocabulary (``None``: tests only)."""
    from training import text_encoder as encoders

    if text_encoder is None:
        from training.captions import vocabulary

        return TextEncoder(vocabulary())
    if str(text_encoder).endswith(".keras"):
        return encoders.load_encoder(path=str(text_encoder)).text_encoder
    return encoders.load_encoder(str(text_encoder)).text_encoder


@register_model(
    "gan_cls",
    paper="Reed et al. 2016, Generative Adversarial Text to Image Synthesis (GAN-INT-CLS)",
    training={"batch_size": 64, "g_optimizer": adam(2e-4, 0.5), "d_optimizer": adam(2e-4, 0.5)},
    kind="text_to_image",
)
def gan_cls(
    image_shape=(64, 64, 3),
    latent_dim=100,
    compressed_dim=128,
    generator_width=32,
    discriminator_width=32,
    text_encoder="shapes_captions",
    matching_aware=True,
    interpolation=True,
    interpolation_beta=0.5,
    seed=None,
):
    """GAN-INT-CLS (both on: the paper's best variant) for ``image_shape`` images.

    ``text_encoder``: a data set name (its shipped encoder), a ``.keras`` path of a
    ``DualEncoder``, or None (untrained, for tests).
    """
    image_shape = tuple(int(d) for d in image_shape)
    encoder = text_encoder_for(text_encoder)
    embedding_dim = encoder.embedding_dim
    return TextToImageGAN(
        text_conditioned_generator(image_shape, latent_dim, embedding_dim, compressed_dim,
                                   generator_width),
        text_conditioned_discriminator(image_shape, embedding_dim, compressed_dim,
                                       discriminator_width),
        encoder, matching_aware=matching_aware, interpolation=interpolation,
        interpolation_beta=interpolation_beta, seed=seed, name="gan_cls",
    )
