"""WGAN with weight clipping (Arjovsky, Chintala, Bottou 2017, "Wasserstein GAN").

The critic f estimates W1 through the Kantorovich-Rubinstein dual; Lipschitz continuity is
enforced crudely by clipping every critic weight to [-0.01, 0.01] after each step. Paper
defaults (Algorithm 1): RMSProp lr 5e-5, 5 critic steps per generator step, batch 64, a DCGAN
critic (with batch norm) without the sigmoid, Gaussian noise. RMSProp's decay rho is 0.99, the
value of the authors' PyTorch code (``optim.RMSprop``'s default ``alpha``); the paper does not
give it, and Keras's default would be 0.9.
"""

from zoo.models.dcgan import _arguments, dcgan_style_model
from zoo.registry import register_model, rmsprop


@register_model(
    "wgan",
    paper="Arjovsky et al. 2017, Wasserstein GAN",
    training={"batch_size": 64, "g_optimizer": rmsprop(5e-5, rho=0.99),
              "d_optimizer": rmsprop(5e-5, rho=0.99)},
)
def wgan(
    image_shape=(28, 28, 1),
    latent_dim=100,
    generator_width=128,
    discriminator_width=64,
    kernel_size=5,
    discriminator_normalization="batch",
    spectral_norm=False,
    loss="wasserstein",
    latent_distribution="normal",
    seed=None,
    n_critic=5,
    clip_value=0.01,
    **stabilisers,
):
    """WGAN on DCGAN-style networks at the paper's settings."""
    return dcgan_style_model("wgan", **_arguments(locals()))
