"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

A conditional GAN on paired images ``(x, y)``: G translates x to y, D judges ``(x, y)`` pairs.

- **Generator** (sec. 3.1, appendix 6.1.1): a U-Net. Encoder ``C64-C128-C256-C512-C512-C512-
  C512-C512`` of 4x4 stride-2 convolutions with LeakyReLU(0.2), no normalisation on the first
  layer; decoder ``CD512-CD512-CD512-C512-C256-C128-C64`` of 4x4 stride-2 transposed
  convolutions with ReLU, each concatenated with the mirrored encoder layer (skip connections),
  then a transposed conv to the output channels and tanh. The depth follows the image: the
  encoder halves H and W until the smaller one reaches 1 (8 steps at 256x256 as in the paper,
  6 at 64x64, 7 at 128x128); widths are ``width * min(2^i, 8)``. As in the authors' code the
  1x1 bottleneck is not normalised (normalising a single pixel zeroes it).
- **Noise** (sec. 3.1): no z; dropout 0.5 in the first 3 decoder blocks, at training *and* test
  time (``PersistentDropout``; ``test_time_dropout=False`` gives deterministic inference).
- **Normalisation**: the paper uses batch norm with the statistics of the current batch at
  train and test time with batch size 1 (sec. 3.3), which is exactly instance normalisation, so
  the default is ``normalization="instance"`` (per-example, also at serving time with batches of
  any size); ``"batch"`` gives ordinary batch norm for the paper's batch > 1 experiments.
- **Discriminator** (sec. 3.2.2): the 70x70 PatchGAN ``C64-C128-C256-C512`` conditioned on the
  input image (input and target concatenated along channels).
- **Objective** (eq. 4): ``G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G)``, lambda = 100,
  with the non-saturating generator loss (sec. 3.3: "train G to maximize log D(x, G(x))") and
  D's cross-entropy *divided by 2* "while optimizing D, which slows down the rate at which D
  learns relative to G" (sec. 3.3): ``discriminator_loss_weight=0.5``. Losses come from
  ``zoo.losses``; ``adversarial_weight=0`` trains G with L1 alone (the paper's "L1" baseline,
  Table 1), skipping D entirely.
- **Training** (sec. 3.3): Adam lr 2e-4, beta_1 0.5, batch size 1; G and D alternate one step
  each, D first, both on the same generated batch.
"""

from __future__ import annotations


import keras
import tensorflow as tf
from keras import ops

from zoo import losses as zoo_losses
from zoo.base import TwoPlayerMixin
from zoo.layers import kernel_init
from zoo.models.image_to_image import (
    PersistentDropout,
    check_image_size,
    l1_distance,
    normalization,
    patchgan_discriminator,
    total_stride,
)
from zoo.registry import adam, register_model


def unet_depth(image_shape):
    """Stride-2 steps of the U-Net: halve H and W while both are even and the smaller is > 1."""
    height, width = int(image_shape[0]), int(image_shape[1])
    steps = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) > 1:
        height, width, steps = height // 2, width // 2, steps + 1
    if steps < 2:
        raise ValueError(
            f"pix2pix needs image height and width divisible by 4 at least, got {image_shape[:2]}."
        )
    return steps


def unet_generator(
    input_channels, output_channels, depth, width=64, dropout_rate=0.5, dropout_blocks=3,
    test_time_dropout=True, normalization_kind="instance", seed=None, name="generator",
):
    """The U-Net of Isola 2017, appendix 6.1.1, with ``depth`` stride-2 steps (8 in the paper).

    Fully convolutional: maps ``(B, H, W, input_channels)`` with H, W multiples of ``2^depth`` to
    ``(B, H, W, output_channels)`` in [-1, 1].
    """
    dropout = PersistentDropout if test_time_dropout else keras.layers.Dropout
    use_bias = normalization_kind != "batch"
    inputs = keras.Input((None, None, input_channels), name="images")
    x, skips = inputs, []
    for index in range(depth):
        normalised = 0 < index < depth - 1  # not the first layer, not the 1x1 bottleneck
        if index > 0:
            x = keras.layers.LeakyReLU(0.2)(x)
        x = keras.layers.Conv2D(
            width * min(2**index, 8), 4, strides=2, padding="same",
            use_bias=use_bias or not normalised, kernel_initializer=kernel_init(),
            name=f"encoder_{index + 1}",
        )(x)
        if normalised:
            x = normalization(normalization_kind)(x)
        skips.append(x)
    for block in range(1, depth):  # decoder block k mirrors encoder layer depth - k
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2DTranspose(
            width * min(2 ** (depth - 1 - block), 8), 4, strides=2, padding="same",
            use_bias=use_bias, kernel_initializer=kernel_init(), name=f"decoder_{block}",
        )(x)
        x = normalization(normalization_kind)(x)
        if block <= dropout_blocks and dropout_rate > 0:
            x = dropout(dropout_rate, seed=None if seed is None else seed + block)(x)
        x = keras.layers.Concatenate(axis=-1)([x, skips[depth - 1 - block]])
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Conv2DTranspose(
        output_channels, 4, strides=2, padding="same", activation="tanh",
        kernel_initializer=kernel_init(), name="translated",
    )(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class Pix2Pix(TwoPlayerMixin, keras.Model):
    """pix2pix: ``model(x)`` is ``generator(x)``; ``fit`` takes ``(input_images, target_images)``.

    Args:
        generator: ``keras.Model`` mapping input images to target-domain images in [-1, 1].
        discriminator: ``keras.Model`` mapping ``[input_images, images]`` to PatchGAN logits.
        loss: name of a loss pair in ``zoo.losses.LOSSES`` (paper: "non_saturating").
        l1_weight: lambda of the L1 term (paper: 100).
        adversarial_weight: weight of G's adversarial term; 0 trains G with L1 only (no D step).
        discriminator_loss_weight: factor on D's loss (paper: 0.5, "divide the objective by 2").
    """

    def __init__(
        self, generator, discriminator, loss="non_saturating", l1_weight=100.0,
        adversarial_weight=1.0, discriminator_loss_weight=0.5, **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.adversarial_loss = zoo_losses.get_loss(loss)
        self.l1_weight = float(l1_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator_loss_weight = float(discriminator_loss_weight)
        if min(self.l1_weight, self.adversarial_weight, self.discriminator_loss_weight) < 0:
            raise ValueError("l1_weight, adversarial_weight and discriminator_loss_weight must be >= 0.")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.g_adversarial_tracker = keras.metrics.Mean(name="g_adversarial")
        self.g_l1_tracker = keras.metrics.Mean(name="g_l1")
        self.built = True  # both networks are built functional models

    # --- Translation ---------------------------------------------------------------------------

    @property
    def generator_stride(self):
        """H and W of an input must be multiples of this."""
        return total_stride(self.generator)

    @property
    def translators(self):
        """Named generators, for export (``export.translation``)."""
        return {"translate": self.generator}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def translate(self, inputs):
        """Translate a batch ``(B, H, W, C_in)`` in [-1, 1]; H, W multiples of ``generator_stride``."""
        check_image_size(tuple(inputs.shape[1:3]), self.generator_stride, "input")
        return self.generator(inputs, training=False)

    # --- Training ------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.g_adversarial_tracker, self.g_l1_tracker]

    @staticmethod
    def unpack(data):
        inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        if targets is None:
            raise ValueError("pix2pix trains on pairs: pass (input_images, target_images).")
        return inputs, targets

    def train_step(self, data):
        """One D step then one G step on the same generated batch (authors' code order)."""
        inputs, targets = self.unpack(data)
        with tf.GradientTape() as g_tape:
            fakes = self.generator(inputs, training=True)
            if self.adversarial_weight:
                with g_tape.stop_recording():
                    d_loss = self.discriminator_step(inputs, targets, ops.stop_gradient(fakes))
                fake_logits = self.discriminator([inputs, fakes], training=True)
                g_adversarial = self.adversarial_loss.generator(fake_logits)
            else:
                d_loss = g_adversarial = ops.zeros((), "float32")
            g_l1 = l1_distance(targets, fakes)
            g_loss = self.adversarial_weight * g_adversarial + self.l1_weight * g_l1
        self.apply_player_gradients(self.g_optimizer, g_tape, g_loss, self.generator_variables)
        return self.update_trackers(d_loss, g_loss, g_adversarial, g_l1)

    def discriminator_step(self, inputs, targets, fakes):
        with tf.GradientTape() as tape:
            d_loss = self.discriminator_loss(inputs, targets, fakes, training=True)
        self.apply_player_gradients(self.d_optimizer, tape, d_loss, self.discriminator_variables)
        return d_loss

    def discriminator_loss(self, inputs, targets, fakes, training):
        real_logits = self.discriminator([inputs, targets], training=training)
        fake_logits = self.discriminator([inputs, fakes], training=training)
        return self.discriminator_loss_weight * self.adversarial_loss.discriminator(real_logits, fake_logits)

    def test_step(self, data):
        """The same losses on held-out pairs, without updates (D and G in inference mode)."""
        inputs, targets = self.unpack(data)
        fakes = self.generator(inputs, training=False)
        d_loss = self.discriminator_loss(inputs, targets, fakes, training=False)
        g_adversarial = self.adversarial_loss.generator(self.discriminator([inputs, fakes], training=False))
        g_l1 = l1_distance(targets, fakes)
        g_loss = self.adversarial_weight * g_adversarial + self.l1_weight * g_l1
        return self.update_trackers(d_loss, g_loss, g_adversarial, g_l1)

    def update_trackers(self, d_loss, g_loss, g_adversarial, g_l1):
        for tracker, value in zip(self.metrics, (d_loss, g_loss, g_adversarial, g_l1)):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

    # --- Serialisation ---------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **self.serialize_networks(),
            "loss": self.loss_name,
            "l1_weight": self.l1_weight,
            "adversarial_weight": self.adversarial_weight,
            "discriminator_loss_weight": self.discriminator_loss_weight,
        }


@register_model(
    "pix2pix",
    paper="Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks",
    training={"batch_size": 1, "g_optimizer": adam(2e-4, 0.5), "d_optimizer": adam(2e-4, 0.5)},
    kind="image_to_image",
    paired=True,
)
def pix2pix(
    image_shape=(256, 256, 3),
    input_channels=3,
    generator_width=64,
    discriminator_width=64,
    discriminator_layers=3,
    dropout_rate=0.5,
    test_time_dropout=True,
    normalization="instance",
    loss="non_saturating",
    l1_weight=100.0,
    adversarial_weight=1.0,
    discriminator_loss_weight=0.5,
    seed=None,
):
    """pix2pix for ``input_channels``-channel inputs and targets of ``image_shape`` (H, W, C).

    The U-Net's depth follows H and W (see ``unet_depth``); at serving time it translates any
    H, W that are multiples of ``2^depth``. ``seed`` seeds the dropout masks.
    """
    image_shape = tuple(int(d) for d in image_shape)
    generator = unet_generator(
        input_channels, image_shape[-1], unet_depth(image_shape), generator_width, dropout_rate,
        test_time_dropout=test_time_dropout, normalization_kind=normalization, seed=seed,
    )
    discriminator = patchgan_discriminator(
        image_shape[-1], discriminator_width, discriminator_layers, normalization,
        condition_channels=input_channels,
    )
    return Pix2Pix(
        generator, discriminator, loss=loss, l1_weight=l1_weight,
        adversarial_weight=adversarial_weight,
        discriminator_loss_weight=discriminator_loss_weight, name="pix2pix",
    )
