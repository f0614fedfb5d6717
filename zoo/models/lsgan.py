"""LSGAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks").

The sigmoid cross-entropy is replaced by least squares with targets a=0 (fake), b=1 (real) for
the discriminator and c=1 for the generator (sec. 3.2.3, the "0-1 coding"); this penalises
samples far on the correct side of the boundary and so gives gradients where the minimax loss
saturates. Adam lr 2e-4, beta_1 0.5 and batch 64 follow the paper's experiments; networks are
DCGAN-style at 28x28 (the paper's own networks target 112x112 LSUN scenes).
"""

from zoo.models.dcgan import _arguments, dcgan_style_model
from zoo.registry import adam, register_model


@register_model(
    "lsgan",
    paper="Mao et al. 2017, Least Squares Generative Adversarial Networks",
    training={"batch_size": 64, "g_optimizer": adam(2e-4, 0.5), "d_optimizer": adam(2e-4, 0.5)},
)
def lsgan(
    image_shape=(28, 28, 1),
    latent_dim=100,
    generator_width=128,
    discriminator_width=64,
    kernel_size=5,
    discriminator_normalization="batch",
    spectral_norm=False,
    loss="least_squares",
    latent_distribution="uniform",
    seed=None,
    **stabilisers,
):
    """LSGAN on DCGAN-style networks."""
    return dcgan_style_model("lsgan", **_arguments(locals()))
