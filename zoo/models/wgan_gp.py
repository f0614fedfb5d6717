"""WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs").

Replaces weight clipping by a penalty lambda * E[(||grad f(x_hat)|| - 1)^2] on random
interpolates x_hat between real and fake samples. Paper defaults (Algorithm 1): lambda 10,
5 critic steps, Adam lr 1e-4 with (beta_1, beta_2) = (0.5, 0.9) as in its MNIST code (the
algorithm box gives (0, 0.9)), batch 64 (the paper's MNIST code uses 50), 128-d Gaussian noise,
and no batch normalisation in the critic (sec. 4: the penalty is per example).

The zoo's combination mixes two of the authors' setups: the generator is the DCGAN one with
batch norm, as in their 64x64 / CIFAR-10 code, whose Adam has beta_1 = 0 (Algorithm 1), while
beta_1 = 0.5 comes from their MNIST code, whose generator has no batch norm. The zoo keeps
this mix (one DCGAN-style generator for every variant, and the MNIST code's optimizer for the
28x28 data it trains on); it is named here as a deviation.
"""

from zoo.models.dcgan import _arguments, dcgan_style_model
from zoo.registry import adam, register_model


@register_model(
    "wgan_gp",
    paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs",
    training={"batch_size": 64, "g_optimizer": adam(1e-4, 0.5, 0.9),
              "d_optimizer": adam(1e-4, 0.5, 0.9)},
)
def wgan_gp(
    image_shape=(28, 28, 1),
    latent_dim=128,
    generator_width=128,
    discriminator_width=64,
    kernel_size=5,
    discriminator_normalization=None,
    spectral_norm=False,
    loss="wasserstein",
    latent_distribution="normal",
    seed=None,
    n_critic=5,
    gradient_penalty_weight=10.0,
    **stabilisers,
):
    """WGAN-GP on DCGAN-style networks (critic without batch norm) at the paper's settings."""
    return dcgan_style_model("wgan_gp", **_arguments(locals()))
