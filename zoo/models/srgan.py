"""SRResNet and SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network"): 4x super-resolution of photos.

- **Generator** (sec. 2.2, Fig. 4): a 9x9 conv with 64 filters and PReLU, ``B = 16`` residual
  blocks (3x3 conv, BN, PReLU, 3x3 conv, BN, identity skip), a 3x3 conv + BN closed by a long
  skip from the first layer, two sub-pixel stages (3x3 conv to ``4 * 64`` channels, pixel
  shuffle x2 (Shi et al. 2016; ``tf.nn.depth_to_space``), PReLU) and a 9x9 conv to RGB. It is
  fully convolutional: any H x W in, 4H x 4W out. PReLU slopes are per channel; the output is
  linear (no tanh), clipped to [-1, 1] only when encoded.
- **Discriminator** (Fig. 4): eight 3x3 convs (64, 64/2, 128, 128/2, 256, 256/2, 512, 512/2),
  BN on all but the first, LeakyReLU(0.2), then Dense 1024, LeakyReLU(0.2), Dense 1 (a logit;
  the paper's sigmoid is inside the loss). Its Dense layer fixes the HR crop size it judges.
- **Objective** (eq. 3): ``l_SR = l_content + 1e-3 * l_adversarial``; the adversarial term is the
  non-saturating ``-log D(G(I_LR))`` (eq. 6), D is trained with the usual cross-entropy.
  ``content_loss="mse"`` is pixel MSE (SRResNet-MSE, SRGAN-MSE); ``"vgg54"`` (SRGAN's default,
  sec. 2.2.1) is the MSE between VGG19 ``block5_conv4`` feature maps (after ReLU, before the 5th
  pooling) of the ImageNet-trained VGG19 of ``keras.applications``, rescaled by 1/12.75 as in
  sec. 3.2; ``"vgg22"`` uses ``block2_conv2`` (the paper's SRGAN-VGG22). The VGG features are a
  frozen sub-network of the model (saved in the ``.keras`` file, never in the export).
- **Data ranges**: LR inputs and HR outputs are both in [-1, 1], the zoo's image convention (the
  paper scales LR to [0, 1] and HR to [-1, 1]; a fixed affine map of the input, learnt away by
  the first conv). LR = bicubic 4x downscale of the HR crop (``training.super_resolution_data``).
- **Training** (sec. 3.2): Adam lr 1e-4, beta_1 0.9, batch 16 of 96x96 HR crops; SRGAN starts
  from a trained SRResNet (``--init-from RUN_DIR``: ``init_generator_from``).

Deviations: the paper trains SRResNet for 10^6 steps and SRGAN for 10^5 steps at lr 1e-4 then
10^5 at 1e-5, on 350k ImageNet images with a GPU. The zoo's defaults are the paper's; the runs
released here were trained on 2 shared CPU cores with fewer blocks, filters, smaller crops and
far fewer steps at a constant learning rate, named in ``docs/super_resolution.md`` and each
model card. ``bicubic_skip`` (off by default) is the one architectural deviation those runs use:
a residual over the bicubic up-sampled input (VDSR's global residual learning), so that a few
thousand CPU steps pass bicubic. ImageNet VGG19 weights cannot be downloaded offline:
``content_weights`` then takes the path of a ``.weights.h5`` file of the truncated VGG, or
``None``, a frozen randomly initialised VGG19 (see ``content_network``).
"""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf
from keras import ops

from zoo import losses as zoo_losses
from zoo.base import TwoPlayerMixin
from zoo.registry import adam, register_model

SCALE = 4  # the paper's upscaling factor: two x2 sub-pixel stages
CONTENT_LAYERS = {"vgg22": "block2_conv2", "vgg54": "block5_conv4"}
CONTENT_LOSSES = ("mse",) + tuple(CONTENT_LAYERS)
VGG_FEATURE_SCALE = 1.0 / 12.75  # sec. 3.2: VGG losses rescaled to the scale of the MSE loss
VGG_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.vgg19.preprocess_input ("caffe")


def _grown(size, factor):
    """A spatial dimension ``factor`` times larger (``None``, unknown, stays unknown)."""
    return None if size is None else size * factor


@keras.saving.register_keras_serializable(package="zoo")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution's rearrangement (Shi et al. 2016): ``(B, H, W, r^2 C) -> (B, rH, rW, C)``."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _grown(input_shape[1], self.block_size),
                _grown(input_shape[2], self.block_size), input_shape[3] // self.block_size**2)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="zoo")
class BicubicUpscale(keras.layers.Layer):
    """``scale``x bicubic up-sampling of any H x W (``tf.image.resize``): the base image that
    ``bicubic_skip`` adds the generator's residual to."""

    def __init__(self, scale=SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        return tf.image.resize(inputs, tf.shape(inputs)[1:3] * self.scale, method="bicubic")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _grown(input_shape[1], self.scale), _grown(input_shape[2], self.scale),
                input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _prelu(name=None):
    return keras.layers.PReLU(shared_axes=[1, 2], name=name)  # one slope per channel, any H x W


def srresnet_generator(residual_blocks=16, filters=64, scale=SCALE, bicubic_skip=False, name="generator"):
    """The SRResNet generator of Ledig 2017, Fig. 4: ``(B, H, W, 3) -> (B, scale H, scale W, 3)``.

    ``bicubic_skip`` (a deviation, off by default): the network draws a residual over the bicubic
    up-sampled input (global residual learning, Kim et al. 2016, VDSR), its last conv
    zero-initialised, so the untrained generator *is* bicubic and training only has to learn the
    missing detail: far fewer steps to pass bicubic, which a CPU budget needs.
    """
    stages = int(round(math.log2(scale)))
    if scale < 2 or 2**stages != scale:
        raise ValueError(f"scale must be a power of 2 (the paper's is 4), got {scale}.")
    if residual_blocks < 1 or filters < 1:
        raise ValueError(f"residual_blocks and filters must be >= 1, got {residual_blocks}, {filters}.")
    inputs = keras.Input((None, None, 3), name="images")
    x = keras.layers.Conv2D(filters, 9, padding="same", name="head")(inputs)
    x = head = _prelu()(x)
    for block in range(residual_blocks):
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block_{block + 1}_conv_1")(x)
        y = keras.layers.BatchNormalization()(y)
        y = _prelu()(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block_{block + 1}_conv_2")(y)
        y = keras.layers.BatchNormalization()(y)
        x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(filters, 3, padding="same", name="body_end")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([head, x])
    for stage in range(stages):
        x = keras.layers.Conv2D(4 * filters, 3, padding="same", name=f"upsample_{stage + 1}")(x)
        x = PixelShuffle(2)(x)
        x = _prelu()(x)
    if bicubic_skip:
        residual = keras.layers.Conv2D(3, 9, padding="same", kernel_initializer="zeros", name="residual")(x)
        outputs = keras.layers.Add(name="super_resolved")([BicubicUpscale(scale, name="bicubic")(inputs), residual])
    else:
        outputs = keras.layers.Conv2D(3, 9, padding="same", name="super_resolved")(x)
    return keras.Model(inputs, outputs, name=name)


def srgan_discriminator(image_size=96, filters=64, name="discriminator"):
    """The SRGAN discriminator of Ledig 2017, Fig. 4, on ``(B, image_size, image_size, 3)`` -> logits ``(B, 1)``."""
    if image_size % 16:
        raise ValueError(f"the discriminator halves the HR crop 4 times: its side must be a multiple "
                         f"of 16, got {image_size}.")
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for index in range(8):
        x = keras.layers.Conv2D(filters * 2 ** (index // 2), 3, strides=1 + index % 2, padding="same",
                                use_bias=index == 0)(x)
        if index > 0:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(1024)(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    logits = keras.layers.Dense(1, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class ChannelReverse(keras.layers.Layer):
    """RGB -> BGR (VGG's Caffe weights expect BGR)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)


def content_network(content_loss="vgg54", weights="imagenet"):
    """The frozen VGG19 feature extractor of a feature content loss (Ledig 2017, eq. 5).

    ``weights``: ``"imagenet"`` (``keras.applications.VGG19``'s download, the paper's network),
    ``None`` (random weights, frozen and saved with the model: the tests' choice, and the
    offline fallback; random shallow conv features still capture local image statistics,
    Ustyuzhaninov et al. 2017, "What does it take to generate natural textures?", but they are
    not the paper's ImageNet features: name them so) or the path of a ``.weights.h5`` file
    holding the truncated network's weights (for machines without internet; name its origin).
    Inputs are images in [-1, 1]; they are mapped to VGG's BGR mean-subtracted 0-255 range inside.
    """
    if content_loss not in CONTENT_LAYERS:
        raise ValueError(f"content_loss must be one of {CONTENT_LOSSES}, got {content_loss!r}.")
    from_file = weights not in (None, "imagenet")
    if from_file and not os.path.isfile(weights):
        raise ValueError(f"content_weights {weights!r} is not a file; pass 'imagenet', None or the "
                         "path of a .weights.h5 file of the truncated VGG19.")
    try:
        vgg = keras.applications.VGG19(include_top=False, weights="imagenet" if weights == "imagenet" else None,
                                       input_shape=(None, None, 3))
    except Exception as error:  # noqa: BLE001  (keras raises a bare Exception on a failed download)
        raise ValueError(
            f"the ImageNet VGG19 weights of content_loss={content_loss!r} could not be loaded "
            f"({str(error).splitlines()[0]}); connect to the internet once, or pass "
            "content_weights=PATH.weights.h5, or content_loss='mse'."
        ) from None
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Rescaling(127.5, offset=127.5)(images)  # [-1, 1] -> [0, 255]
    x = ChannelReverse(name="rgb_to_bgr")(x)
    x = keras.layers.Normalization(mean=VGG_BGR_MEAN, variance=(1.0, 1.0, 1.0), name="vgg_mean")(x)
    layer = CONTENT_LAYERS[content_loss]
    for vgg_layer in vgg.layers[1:]:
        x = vgg_layer(x)
        if vgg_layer.name == layer:
            break
    network = keras.Model(images, x, name=f"content_{content_loss}")
    if from_file:
        network.load_weights(weights)
    network.trainable = False
    return network


@keras.saving.register_keras_serializable(package="zoo")
class SuperResolutionGAN(TwoPlayerMixin, keras.Model):
    """SRGAN (with a ``discriminator``) or SRResNet (``discriminator=None``): ``model(lr)`` is
    ``generator(lr)``; ``fit`` takes ``(lr_images, hr_images)``, both in [-1, 1].

    Args:
        generator: maps ``(B, H, W, 3)`` to ``(B, 4H, 4W, 3)``.
        discriminator: maps HR crops to logits ``(B, 1)``; None trains the content loss alone.
        content_network: frozen feature extractor of the content loss; None is pixel MSE.
        loss: adversarial loss pair of ``zoo.losses`` (paper: "non_saturating").
        adversarial_weight: weight of G's adversarial term (paper: 1e-3).
        feature_scale: factor on the features before their MSE (paper: 1/12.75).
    """

    NETWORKS = ("generator", "discriminator", "content_network")

    def __init__(self, generator, discriminator=None, content_network=None, loss="non_saturating",
                 adversarial_weight=1e-3, feature_scale=VGG_FEATURE_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.content_network = content_network
        # The networks this instance has (SRResNet: no discriminator; MSE: no content network),
        # for code that walks ``model.NETWORKS``; the config always names all three.
        self.NETWORKS = tuple(key for key in type(self).NETWORKS if getattr(self, key) is not None)
        if content_network is not None:
            content_network.trainable = False
        self.loss_name = loss
        self.adversarial_loss = zoo_losses.get_loss(loss)
        self.adversarial_weight = float(adversarial_weight)
        self.feature_scale = float(feature_scale)
        if self.adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}.")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.content_tracker = keras.metrics.Mean(name="content_loss")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_adversarial_tracker = keras.metrics.Mean(name="g_adversarial")
        self.built = True  # the networks are built functional models

    @property
    def adversarial(self):
        return self.discriminator is not None

    @property
    def discriminator_variables(self):
        return self.discriminator.trainable_variables if self.adversarial else []

    @property
    def scale(self):
        return SCALE

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def upscale(self, lr_images):
        """Super-resolve a batch ``(B, H, W, 3)`` in [-1, 1] to ``(B, 4H, 4W, 3)`` (inference mode)."""
        return self.generator(lr_images, training=False)

    # --- Training ------------------------------------------------------------------------------

    @property
    def metrics(self):
        trackers = [self.g_loss_tracker, self.content_tracker, self.psnr_tracker]
        if self.adversarial:
            trackers += [self.d_loss_tracker, self.g_adversarial_tracker]
        return trackers

    def content_loss(self, hr_images, sr_images):
        """Pixel MSE, or the MSE of ``feature_scale`` times the content network's features (eq. 4, 5)."""
        if self.content_network is None:
            return ops.mean(ops.square(hr_images - sr_images))
        real = self.content_network(hr_images, training=False)
        fake = self.content_network(sr_images, training=False)
        return ops.mean(ops.square(self.feature_scale * (real - fake)))

    @staticmethod
    def unpack(data):
        lr_images, hr_images, _ = keras.utils.unpack_x_y_sample_weight(data)
        if hr_images is None:
            raise ValueError("super-resolution trains on pairs: pass (lr_images, hr_images).")
        return lr_images, hr_images

    def train_step(self, data):
        """One D step on (HR, G(LR)) then one G step on the same batch (Ledig 2017, eq. 2-3)."""
        lr_images, hr_images = self.unpack(data)
        with tf.GradientTape() as g_tape:
            sr_images = self.generator(lr_images, training=True)
            content = self.content_loss(hr_images, sr_images)
            if self.adversarial:
                with g_tape.stop_recording():
                    d_loss = self.discriminator_step(hr_images, ops.stop_gradient(sr_images))
                g_adversarial = self.adversarial_loss.generator(self.discriminator(sr_images, training=True))
            else:
                d_loss = g_adversarial = ops.zeros((), "float32")
            g_loss = content + self.adversarial_weight * g_adversarial
        self.apply_player_gradients(self.g_optimizer, g_tape, g_loss, self.generator_variables)
        return self.update_trackers(g_loss, content, hr_images, sr_images, d_loss, g_adversarial)

    def discriminator_step(self, hr_images, sr_images):
        with tf.GradientTape() as tape:
            d_loss = self.adversarial_loss.discriminator(
                self.discriminator(hr_images, training=True), self.discriminator(sr_images, training=True))
        self.apply_player_gradients(self.d_optimizer, tape, d_loss, self.discriminator_variables)
        return d_loss

    def test_step(self, data):
        """The same losses on held-out pairs, without updates."""
        lr_images, hr_images = self.unpack(data)
        sr_images = self.generator(lr_images, training=False)
        content = self.content_loss(hr_images, sr_images)
        if self.adversarial:
            real_logits = self.discriminator(hr_images, training=False)
            fake_logits = self.discriminator(sr_images, training=False)
            d_loss = self.adversarial_loss.discriminator(real_logits, fake_logits)
            g_adversarial = self.adversarial_loss.generator(fake_logits)
        else:
            d_loss = g_adversarial = ops.zeros((), "float32")
        g_loss = content + self.adversarial_weight * g_adversarial
        return self.update_trackers(g_loss, content, hr_images, sr_images, d_loss, g_adversarial)

    def update_trackers(self, g_loss, content, hr_images, sr_images, d_loss, g_adversarial):
        self.g_loss_tracker.update_state(g_loss)
        self.content_tracker.update_state(content)
        # RGB PSNR of the crops in dB ([-1, 1] images: peak-to-peak 2), a training-time signal;
        # the reported figures are Y-channel PSNR on whole photos (training.super_resolution_quality).
        clipped = ops.clip(sr_images, -1.0, 1.0)
        self.psnr_tracker.update_state(tf.image.psnr(hr_images, clipped, max_val=2.0))
        if self.adversarial:
            self.d_loss_tracker.update_state(d_loss)
            self.g_adversarial_tracker.update_state(g_adversarial)
        return {m.name: m.result() for m in self.metrics}

    # --- Serialisation ---------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **{key: keras.saving.serialize_keras_object(getattr(self, key))
               for key in type(self).NETWORKS},
            "loss": self.loss_name,
            "adversarial_weight": self.adversarial_weight,
            "feature_scale": self.feature_scale,
        }


def _hr_size(image_shape, multiple):
    height, width, channels = (int(d) for d in image_shape)
    if height != width or channels != 3 or height % multiple:
        raise ValueError(f"image_shape is the HR crop: square RGB with a side that is a multiple of "
                         f"{multiple}; got {tuple(image_shape)}.")
    return height


def _content(content_loss, content_weights):
    if content_loss not in CONTENT_LOSSES:
        raise ValueError(f"content_loss must be one of {CONTENT_LOSSES}, got {content_loss!r}.")
    return None if content_loss == "mse" else content_network(content_loss, content_weights)


TRAINING = {"batch_size": 16, "g_optimizer": adam(1e-4, 0.9), "d_optimizer": adam(1e-4, 0.9)}
PAPER = "Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network"


@register_model("srresnet", paper=PAPER, training=TRAINING, kind="super_resolution")
def srresnet(image_shape=(96, 96, 3), residual_blocks=16, filters=64, content_loss="mse",
             content_weights="imagenet", bicubic_skip=False, seed=None):
    """SRResNet: the generator alone, trained on the content loss (pixel MSE in the paper).

    ``image_shape`` is the HR training crop (a multiple of 4); ``bicubic_skip``: see
    ``srresnet_generator``; ``seed`` is accepted for the registry's convention (the network has
    no randomness at inference).
    """
    _hr_size(image_shape, SCALE)
    return SuperResolutionGAN(srresnet_generator(residual_blocks, filters, bicubic_skip=bicubic_skip),
                              content_network=_content(content_loss, content_weights), name="srresnet")


@register_model("srgan", paper=PAPER, training=TRAINING, kind="super_resolution")
def srgan(image_shape=(96, 96, 3), residual_blocks=16, filters=64, discriminator_filters=64,
          content_loss="vgg54", content_weights="imagenet", adversarial_weight=1e-3,
          loss="non_saturating", feature_scale=VGG_FEATURE_SCALE, bicubic_skip=False, seed=None):
    """SRGAN: the SRResNet generator against the paper's discriminator on ``image_shape`` HR crops
    (a multiple of 16), content loss + ``adversarial_weight`` x adversarial loss.

    ``feature_scale`` multiplies the content network's features before their MSE: the paper's
    1/12.75 brings VGG54 losses to the scale of the pixel MSE (sec. 3.2); other feature networks
    need their own factor for the same balance against the adversarial term.
    """
    size = _hr_size(image_shape, 16)
    return SuperResolutionGAN(
        srresnet_generator(residual_blocks, filters, bicubic_skip=bicubic_skip), srgan_discriminator(size, discriminator_filters),
        _content(content_loss, content_weights), loss=loss, adversarial_weight=adversarial_weight,
        feature_scale=feature_scale, name="srgan",
    )


def init_generator_from(model, run_dir):
    """Copy the generator weights of a finished SRResNet (or SRGAN) run into ``model``'s generator
    (Ledig 2017, sec. 3.2: SRGAN starts from the trained MSE-based SRResNet).

    ValueError, in one line, if ``run_dir`` holds no model, a model of another kind, or a
    generator of another shape.
    """
    path = os.path.join(run_dir, "model.keras") if os.path.isdir(run_dir) else run_dir
    if not os.path.isfile(path):
        raise ValueError(f"no finished run at {run_dir} (no model.keras); train srresnet there first.")
    source = keras.saving.load_model(path, compile=False)
    if not isinstance(source, SuperResolutionGAN):
        raise ValueError(f"{run_dir} holds a {source.name!r} model; --init-from needs an srresnet or "
                         "srgan run.")
    theirs, ours = source.generator, model.generator
    shapes = [tuple(v.shape) for v in theirs.weights], [tuple(v.shape) for v in ours.weights]
    if shapes[0] != shapes[1] or _describe(theirs) != _describe(ours):
        raise ValueError(
            f"the generator of {run_dir} ({_describe(theirs)}) does not match this model's "
            f"({_describe(ours)}); set residual_blocks, filters and bicubic_skip to the run's."
        )
    ours.set_weights(theirs.get_weights())


def _describe(generator):
    blocks = sum(1 for layer in generator.layers if layer.name.endswith("_conv_1"))
    skip = any(isinstance(layer, BicubicUpscale) for layer in generator.layers)
    return (f"{blocks} residual blocks x {generator.get_layer('head').filters} filters, "
            f"bicubic_skip={skip}")
