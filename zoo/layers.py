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
        """The stacked kernel of all pieces (lets ``SpectralNorm`` wrap it)."""
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


@keras.saving.register_keras_serializable(package="zoo")
class SpectralNorm(keras.layers.Wrapper):
    """Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for GANs", Alg. 1).

    The wrapped layer computes with ``W / sigma(W)``, sigma the largest singular value of its
    kernel reshaped to ``(fan_in, units)``, estimated by power iteration from a persistent
    vector ``u``. As in the paper: the raw ``W`` stays the trained variable (the normalised
    kernel is never written back), the gradient flows through ``sigma`` (only ``u`` and ``v``
    are constants), and ``u`` is updated only in training, once per call. Keras's
    ``SpectralNormalization`` instead assigns ``W / sigma`` to the kernel variable, so the
    optimizer updates the normalised weights and the gradient ignores ``sigma``.

    Wraps any layer with a ``kernel`` whose last axis is the output units (``Dense``,
    ``Conv2D``, ``zoo.layers.Maxout``); the layer's own op runs on the normalised kernel through
    ``keras.StatelessScope``.
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        super().__init__(layer, **kwargs)
        if int(power_iterations) < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}.")
        self.power_iterations = int(power_iterations)
        self.epsilon = float(epsilon)

    def build(self, input_shape=None):
        super().build(input_shape)
        if not hasattr(self.layer, "kernel"):
            raise ValueError(f"SpectralNorm wraps layers with a kernel, not {type(self.layer).__name__}.")
        units = int(self.layer.kernel.shape[-1])
        self.u = self.add_weight(shape=(1, units), initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                 trainable=False, name="u")

    def _normalize(self, x):
        return x / ops.sqrt(ops.sum(ops.square(x)) + self.epsilon)

    def sigma(self, training=False):
        """The power-iteration estimate of the kernel's largest singular value (updates ``u``
        when ``training``)."""
        kernel = ops.convert_to_tensor(self.layer.kernel)
        matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))  # (fan_in, units)
        u = ops.convert_to_tensor(self.u)
        v = self._normalize(ops.matmul(u, ops.transpose(matrix)))
        if training:
            for step in range(self.power_iterations):
                if step:
                    v = self._normalize(ops.matmul(u, ops.transpose(matrix)))
                u = self._normalize(ops.matmul(v, matrix))
            u, v = ops.stop_gradient(u), ops.stop_gradient(v)
            self.u.assign(u)
        else:
            u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        return ops.sum(ops.matmul(ops.matmul(v, matrix), ops.transpose(u)))

    def call(self, inputs, training=False):
        kernel = self.layer.kernel
        normalized = ops.convert_to_tensor(kernel) / ops.cast(self.sigma(training), kernel.dtype)
        with keras.StatelessScope(state_mapping=[(kernel, normalized)]):
            return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations,
                "epsilon": self.epsilon}
