"""DCGAN (Radford et al. 2015, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks").

The paper's architecture guidelines (sec. 3): strided convolutions in D and fractionally-strided
(transposed) convolutions in G instead of pooling; batch normalisation in both, except G's output
and D's input layers; no hidden fully connected layers (G's first layer is a projection of z,
D's last conv is flattened into one logit); ReLU in G with tanh output; LeakyReLU(0.2) in D.
Training (sec. 4): weights from N(0, 0.02), Adam lr 2e-4 beta_1 0.5, batch 128, 100-d uniform z.

The networks scale with the image: G projects z to ``start x start x (width * 2^(n-1))`` and
doubles the resolution n times, halving the channels; for 64x64 and width 128 this is the
paper's 4x4x1024 -> 64x64x3 generator; for 28x28 it is 7x7x256 -> 14x14x128 -> 28x28x1.
The builders here are reused by the other DCGAN-style variants (WGAN, WGAN-GP, LSGAN).
"""

import keras

from zoo.base import AdversarialModel
from zoo.layers import SpectralNorm, kernel_init
from zoo.registry import adam, register_model



def num_resolution_steps(image_size):
    """How many stride-2 steps separate a ``start`` of 3..7 pixels from ``image_size``."""
    steps, size = 0, image_size
    while size % 2 == 0 and size > 7:
        size //= 2
        steps += 1
    if steps == 0:
        raise ValueError(
            f"DCGAN needs an image size of the form s * 2^n with n >= 1 (e.g. 28, 32, 64), got {image_size}."
        )
    return steps


def dcgan_generator(image_shape, latent_dim=100, width=128, kernel_size=5, batch_norm=True):
    height, _, channels = image_shape
    steps = num_resolution_steps(height)
    start = height // 2**steps
    z = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(start * start * width * 2 ** (steps - 1), kernel_initializer=kernel_init())(z)
    x = keras.layers.Reshape((start, start, width * 2 ** (steps - 1)))(x)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for step in range(steps - 1, 0, -1):
        x = keras.layers.Conv2DTranspose(
            width * 2 ** (step - 1), kernel_size, strides=2, padding="same", use_bias=not batch_norm,
            kernel_initializer=kernel_init(),
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    images = keras.layers.Conv2DTranspose(
        channels, kernel_size, strides=2, padding="same", activation="tanh",
        kernel_initializer=kernel_init(), name="images",
    )(x)
    return keras.Model(z, images, name="generator")


def dcgan_discriminator(image_shape, width=64, kernel_size=5, normalization="batch", spectral_norm=False):
    """Strided-conv discriminator; ``normalization`` is "batch", "layer" or None (a WGAN-GP critic
    must not use batch norm, Gulrajani 2017 sec. 4); ``spectral_norm`` wraps every conv and the
    output layer in ``zoo.layers.SpectralNorm`` (Miyato et al. 2018), whose discriminators have
    no batch norm: rescaling by batch statistics would undo the Lipschitz bound, so the
    combination is refused."""
    if spectral_norm and normalization == "batch":
        raise ValueError(
            "spectral_norm=True needs a discriminator without batch norm (it would undo the "
            "Lipschitz bound, Miyato 2018); also set discriminator_normalization=null."
        )
    steps = num_resolution_steps(image_shape[0])
    wrap = SpectralNorm if spectral_norm else (lambda layer: layer)
    images = keras.Input(tuple(image_shape), name="images")
    x = images
    for step in range(steps):
        x = wrap(keras.layers.Conv2D(
            width * 2**step, kernel_size, strides=2, padding="same", kernel_initializer=kernel_init()
        ))(x)
        if step > 0 and normalization == "batch":
            x = keras.layers.BatchNormalization()(x)
        elif step > 0 and normalization == "layer":
            x = keras.layers.LayerNormalization(axis=(1, 2, 3))(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Flatten()(x)
    logits = wrap(keras.layers.Dense(1, kernel_initializer=kernel_init(), name="logits"))(x)
    return keras.Model(images, logits, name="discriminator")


def dcgan_style_model(
    name,
    image_shape,
    latent_dim,
    generator_width,
    discriminator_width,
    kernel_size,
    discriminator_normalization,
    spectral_norm,
    loss,
    latent_distribution,
    seed,
    **stabilisers,
):
    """An ``AdversarialModel`` on DCGAN networks: the shared body of the DCGAN-style variants."""
    image_shape = tuple(image_shape)
    return AdversarialModel(
        generator=dcgan_generator(image_shape, latent_dim, generator_width, kernel_size),
        discriminator=dcgan_discriminator(
            image_shape, discriminator_width, kernel_size, discriminator_normalization, spectral_norm
        ),
        loss=loss,
        latent_distribution=latent_distribution,
        seed=seed,
        name=name,
        **stabilisers,
    )


@register_model(
    "dcgan",
    paper="Radford et al. 2015, Unsupervised Representation Learning with DCGANs",
    training={"batch_size": 128, "g_optimizer": adam(2e-4, 0.5), "d_optimizer": adam(2e-4, 0.5)},
)
def dcgan(
    image_shape=(28, 28, 1),
    latent_dim=100,
    generator_width=128,
    discriminator_width=64,
    kernel_size=5,
    discriminator_normalization="batch",
    spectral_norm=False,
    loss="non_saturating",
    latent_distribution="uniform",
    seed=None,
    **stabilisers,
):
    """DCGAN; ``stabilisers`` (r1_gamma, label_smoothing, ...) go to ``AdversarialModel``."""
    return dcgan_style_model("dcgan", **_arguments(locals()))


def _arguments(local_variables):
    """A builder's arguments (its ``locals()``), with ``**stabilisers`` flattened in."""
    arguments = dict(local_variables)
    arguments.update(arguments.pop("stabilisers", {}))
    return arguments
