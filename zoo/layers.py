"""Layers the zoo needs that Keras does not ship."""

import keras
from keras import ops


def kernel_init():
    """N(0, 0.02) weights (Radford 2015, sec. 4; also pix2pix and CycleGAN). A fresh initializer
    per layer, because one unseeded instance shared by layers gives same-shaped layers identical
    weights."""
    return keras.initializers.RandomNormal(0.0, 0.02)


@keras.saving.register_keras_serializable(package="zoo")
class Maxout(keras.layers.Layer):
    """Dense maxout units: the max over ``pieces`` affine pieces (Goodfellow et al. 2013, "Maxout
    Networks"), the discriminator unit of the original GAN (Goodfellow et al. 2014)."""

    def __init__(self, units, pieces, kernel_initializer="glorot_uniform", kernel_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.pieces = pieces
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.dense = keras.layers.Dense(units * pieces, kernel_initializer=self.kernel_initializer,
                                        kernel_constraint=self.kernel_constraint)

    def build(self, input_shape):
        self.dense.build(input_shape)

    @property
    def kernel(self):
        """The stacked kernel of all pieces (lets ``keras.layers.SpectralNormalization`` wrap it)."""
        return self.dense.kernel

    def call(self, inputs):
        pieces = ops.reshape(self.dense(inputs), (-1, self.units, self.pieces))
        return ops.max(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "pieces": self.pieces,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
        }
