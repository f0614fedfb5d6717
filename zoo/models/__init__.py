"""Every registered variant: one module each, imported here to register it."""

from zoo.models import cyclegan, dcgan, lsgan, pix2pix, srgan, vanilla, wgan, wgan_gp  # noqa: F401
from zoo.models import gan_cls, stackgan  # noqa: F401  (text-to-image)
