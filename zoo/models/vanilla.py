"""Vanilla GAN (Goodfellow et al. 2014, "Generative Adversarial Nets").

Multilayer perceptrons as in the paper's MNIST experiment (its pylearn2 configuration,
goodfeli/adversarial ``mnist.yaml``): G is 100-d noise -> 1200 ReLU -> 1200 ReLU -> pixels;
D is two maxout layers of 240 units x 5 pieces with dropout (input kept with p 0.8, hidden
0.5) -> one logit. Batch 100, and the non-saturating generator loss the paper recommends in
practice (sec. 3).

Deviations: the output is ``tanh`` instead of ``sigmoid`` because the zoo's pipelines scale
images to [-1, 1]. Two choices are the zoo's, not that configuration's: the max column norms
of D (0.9 on the maxout layers, 1.9365 on the output; ``mnist.yaml`` has no ``max_col_norm``,
1.9365 is the value of the maxout paper's MNIST configurations, Goodfellow et al. 2013), kept
as a guard for the Adam optimizer below; and U(-1, 1) noise (the GAN code draws
U(-sqrt 3, sqrt 3), unit variance), the zoo's one uniform distribution shared with DCGAN. The optimizer is Adam (lr 2e-4, beta_1 0.5, from Radford 2015) instead of
the paper's SGD (lr 0.1, momentum 0.5 -> 0.7, decaying lr): with SGD at lr 0.1 and constant
momentum 0.5, our Fashion-MNIST run diverged within one epoch (d_loss above 250, noise samples).
"""

import math

import keras

from zoo.base import AdversarialModel
from zoo.layers import Maxout, SpectralNorm
from zoo.registry import adam, register_model


def mlp_generator(image_shape, latent_dim=100, hidden_units=(1200, 1200)):
    z = keras.Input((latent_dim,), name="z")
    x = z
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    x = keras.layers.Dense(math.prod(image_shape), activation="tanh")(x)
    images = keras.layers.Reshape(image_shape, name="images")(x)
    return keras.Model(z, images, name="generator")


def maxout_discriminator(image_shape, hidden_units=(240, 240), pieces=5, dropout=0.5,
                         spectral_norm=False):
    wrap = SpectralNorm if spectral_norm else (lambda layer: layer)
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Flatten()(images)
    x = keras.layers.Dropout(0.2)(x)
    for units in hidden_units:
        x = wrap(Maxout(units, pieces, kernel_constraint=keras.constraints.MaxNorm(0.9)))(x)
        x = keras.layers.Dropout(dropout)(x)
    logits = wrap(keras.layers.Dense(
        1, kernel_constraint=keras.constraints.MaxNorm(1.9365), name="logits"))(x)
    return keras.Model(images, logits, name="discriminator")


@register_model(
    "vanilla",
    paper="Goodfellow et al. 2014, Generative Adversarial Nets",
    training={"batch_size": 100, "g_optimizer": adam(2e-4, 0.5), "d_optimizer": adam(2e-4, 0.5)},
)
def vanilla(
    image_shape=(28, 28, 1),
    latent_dim=100,
    generator_units=(1200, 1200),
    discriminator_units=(240, 240),
    maxout_pieces=5,
    spectral_norm=False,
    loss="non_saturating",
    latent_distribution="uniform",
    seed=None,
    **stabilisers,
):
    """The MLP GAN of Goodfellow et al. 2014; ``stabilisers`` go to ``AdversarialModel``."""
    image_shape = tuple(image_shape)
    return AdversarialModel(
        generator=mlp_generator(image_shape, latent_dim, tuple(generator_units)),
        discriminator=maxout_discriminator(
            image_shape, tuple(discriminator_units), maxout_pieces, spectral_norm=spectral_norm
        ),
        loss=loss,
        latent_distribution=latent_distribution,
        seed=seed,
        name="vanilla",
        **stabilisers,
    )
