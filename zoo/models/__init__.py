"""Every registered variant: one module each, imported here to register it."""

from zoo.models import dcgan, lsgan, vanilla, wgan, wgan_gp  # noqa: F401
