"""Pieces shared by the image-to-image translation GANs (pix2pix, CycleGAN).

- ``patchgan_discriminator``: the 70x70 PatchGAN of Isola et al. 2017 (sec. 3.2.2, appendix
  6.1.2), also CycleGAN's discriminator (Zhu et al. 2017, sec. 4 and appendix 7.2), optionally
  conditioned on the input image (pix2pix concatenates input and target along channels).
- ``normalization``: batch or instance normalisation. Keras 3 has no InstanceNormalization
  layer; ``GroupNormalization(groups=-1)`` (one group per channel) normalises every channel of
  every example over its own H x W, which is instance normalisation (Ulyanov et al. 2016);
  ``tests/test_image_to_image.py`` checks it against the formula.
- ``ReflectionPadding2D``: reflection padding (Keras has none), used by CycleGAN's generator.
- ``PersistentDropout``: dropout that stays on at inference, pix2pix's noise source (Isola
  2017, sec. 3.1: "we apply dropout at test time").
- ``total_stride``: the factor a fully convolutional generator needs H and W to be a multiple of.

Weights are drawn from N(0, 0.02) as in both papers' code, by ``zoo.layers.kernel_init``.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.layers import kernel_init

INSTANCE_NORM_EPSILON = 1e-5  # PyTorch's InstanceNorm2d default, used by both papers' code




@keras.saving.register_keras_serializable(package="zoo")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads H and W of NHWC images by reflection (no edge repeat), like PyTorch's ReflectionPad2d."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        grow = lambda size: None if size is None else size + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="zoo")
class PersistentDropout(keras.layers.Dropout):
    """Dropout applied in training *and* inference: pix2pix's only noise source (Isola 2017, 3.1).

    The state of its random generator is saved with the layer's weights, so a reloaded ``.keras``
    model or an exported SavedModel draws the same masks as the model had when it was saved.
    """

    def call(self, inputs, training=False):
        return super().call(inputs, training=True)

    def save_own_variables(self, store):
        if self.rate > 0:
            store["0"] = self.seed_generator.state

    def load_own_variables(self, store):
        if self.rate > 0:
            self.seed_generator.state.assign(store["0"])


def normalization(kind, affine=True, name=None):
    """A normalisation layer: ``"batch"``, ``"instance"`` or ``None`` (identity).

    ``affine=False`` drops the learned scale and offset, as CycleGAN's code does for instance
    norm (PyTorch's ``InstanceNorm2d`` default).
    """
    if kind == "batch":
        return keras.layers.BatchNormalization(center=affine, scale=affine, name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(
            groups=-1, epsilon=INSTANCE_NORM_EPSILON, center=affine, scale=affine, name=name
        )
    if kind is None:
        return keras.layers.Identity(name=name)
    raise ValueError(f"normalization must be 'batch', 'instance' or None, got {kind!r}.")


def patchgan_discriminator(
    channels, width=64, num_layers=3, normalization_kind="batch", condition_channels=None,
    affine=True, name="discriminator",
):
    """PatchGAN: ``C64-C128-C256-C512`` then a 1-channel conv, one logit per image patch.

    Isola 2017, appendix 6.1.2: 4x4 convolutions, stride 2 except the last two, no
    normalisation on the first layer, LeakyReLU(0.2). With ``num_layers=3`` each logit sees a
    70x70 receptive field (1 -> 16x16, 2 -> 34x34, 4 -> 142x142); widths double per layer up to
    ``8 * width``. Padding is 1 pixel per conv as in the authors' code, so a 256x256 input gives
    a 30x30 map. If ``condition_channels`` is set, the model takes ``[condition, image]`` and
    concatenates them along channels (pix2pix's conditional D, sec. 2.1). ``affine=False``
    drops the normalisation's scale and offset (CycleGAN's instance norm).
    Returns logits (no sigmoid), shape ``(B, H', W', 1)``, for any input size.
    """
    image = keras.Input((None, None, channels), name="images")
    inputs = image
    x = image
    if condition_channels is not None:
        condition = keras.Input((None, None, condition_channels), name="condition")
        inputs = [condition, image]
        x = keras.layers.Concatenate(axis=-1)([condition, image])
    for index in range(num_layers + 1):
        stride = 2 if index < num_layers else 1
        filters = width * min(2**index, 8)
        x = keras.layers.ZeroPadding2D(1)(x)
        x = keras.layers.Conv2D(
            filters, 4, strides=stride, use_bias=index == 0 or normalization_kind != "batch",
            kernel_initializer=kernel_init(),
        )(x)
        if index > 0:
            x = normalization(normalization_kind, affine)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.ZeroPadding2D(1)(x)
    logits = keras.layers.Conv2D(1, 4, kernel_initializer=kernel_init(), name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def total_stride(generator):
    """Product of the strides of the generator's convolutions (transposed ones excluded).

    A fully convolutional generator maps any H x W that is a multiple of this back to H x W.
    """
    stride = 1
    for layer in generator._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(
            layer, keras.layers.Conv2DTranspose
        ):
            stride *= int(layer.strides[0])
    return stride


def check_image_size(image_shape, stride, what="image"):
    """Raise ValueError unless H and W of ``image_shape`` are multiples of ``stride``."""
    height, width = image_shape[0], image_shape[1]
    if height % stride or width % stride:
        raise ValueError(
            f"{what} height and width must be multiples of {stride} (the generator's total "
            f"stride); got {height}x{width}."
        )


def l1_distance(a, b):
    """``E[|a - b|]``, the L1 reconstruction term of both papers."""
    return ops.mean(ops.abs(ops.convert_to_tensor(a, "float32") - ops.convert_to_tensor(b, "float32")))
