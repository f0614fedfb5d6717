"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks").

Two generators ``G: A -> B`` and ``F: B -> A`` and two discriminators, ``D_B`` (real B vs G's
outputs) and ``D_A`` (real A vs F's outputs), trained on *unpaired* batches ``(a, b)``.

- **Generators** (appendix 7.2, after Johnson et al. 2016): ``c7s1-64, d128, d256, R256 x 9,
  u128, u64, c7s1-3``: 7x7 conv with reflection padding, two 3x3 stride-2 convs, residual blocks
  of two reflection-padded 3x3 convs, two 3x3 stride-1/2 (transposed) convs, a 7x7 conv to the
  image channels and tanh. Instance normalisation (no affine parameters, as in the authors'
  code) and ReLU after every conv but the last. The paper uses 9 blocks at 256x256 and 6 at
  128x128; ``width`` and ``residual_blocks`` scale the network down for CPU runs. Total stride 4.
- **Discriminators**: the 70x70 PatchGAN (``C64-C128-C256-C512``) with instance norm.
- **Objective** (eqs. 1-3, sec. 4 and 7.1): least-squares adversarial losses (Mao et al. 2017),
  cycle consistency ``lambda * (||F(G(a)) - a||_1 + ||G(F(b)) - b||_1)`` with lambda = 10 and
  the identity loss ``0.5 * lambda * (||G(b) - b||_1 + ||F(a) - a||_1)`` (sec. 5.2, used for
  photo <-> painting). Losses come from ``zoo.losses``: the zoo's least-squares D loss
  ``1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]`` is exactly the authors' halved D objective; its
  G loss ``1/2 E[(D(G(x)) - 1)^2]`` carries Mao's 1/2, which the CycleGAN objective does not
  have, so G's least-squares terms are scaled by 2 (``GENERATOR_LOSS_SCALE``) to keep lambda = 10
  relative to ``E[(D(G(x)) - 1)^2]`` as in the paper.
- **History pool** (sec. 7.1, Shrivastava et al. 2017): D is updated on a buffer of the 50
  last generated images: each new fake is returned as is while the pool fills; then, with
  probability 0.5, a random stored image is returned and replaced by the new one.
  ``ImageHistoryPool`` keeps the buffer in variables, so it runs in the compiled ``train_step``
  and is saved with the model.
- **Training**: Adam lr 2e-4, beta_1 0.5, batch size 1; the learning rate is constant for 100
  epochs, then decays linearly to 0 over the next 100 (``LinearDecayAfterConstant``, in steps).
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf
from keras import ops

from zoo import losses as zoo_losses
from zoo.base import TwoPlayerMixin
from zoo.layers import kernel_init
from zoo.models.image_to_image import (
    ReflectionPadding2D,
    check_image_size,
    l1_distance,
    normalization,
    patchgan_discriminator,
    total_stride,
)
from zoo.registry import register_model

# The zoo's G losses that differ from CycleGAN's objective by a constant factor (see above).
GENERATOR_LOSS_SCALE = {"least_squares": 2.0}

# horse2zebra: max(|trainA|, |trainB|) = max(1067, 1334) images per epoch, batch size 1.
PAPER_STEPS_PER_EPOCH = 1334


# --- Learning rate ------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
class LinearDecayAfterConstant(keras.optimizers.schedules.LearningRateSchedule):
    """``lr`` for ``constant_steps`` steps, then linearly down to 0 over ``decay_steps`` steps.

    ``lr(t) = lr0 * min(1, max(0, 1 - (t - constant_steps) / decay_steps))``; 0 from
    ``constant_steps + decay_steps`` on. CycleGAN (Zhu 2017, sec. 7.1): 100 epochs at 2e-4,
    then 100 epochs of linear decay to zero.
    """

    def __init__(self, initial_learning_rate, constant_steps, decay_steps, name=None):
        if constant_steps < 0 or decay_steps < 1:
            raise ValueError(
                f"constant_steps must be >= 0 and decay_steps >= 1, got {constant_steps}, {decay_steps}."
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        remaining = 1.0 - (step - self.constant_steps) / self.decay_steps
        return self.initial_learning_rate * ops.clip(remaining, 0.0, 1.0)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
            "name": self.name,
        }


def paper_learning_rate(steps_per_epoch=PAPER_STEPS_PER_EPOCH, constant_epochs=100, decay_epochs=100,
                        initial_learning_rate=2e-4):
    """CycleGAN's schedule for a data set of ``steps_per_epoch`` batches."""
    return LinearDecayAfterConstant(
        initial_learning_rate, constant_epochs * steps_per_epoch, decay_epochs * steps_per_epoch
    )


def paper_adam(steps_per_epoch=PAPER_STEPS_PER_EPOCH, constant_epochs=100, decay_epochs=100,
               initial_learning_rate=2e-4):
    """Config of CycleGAN's Adam (beta_1 0.5) with the linear-decay schedule."""
    schedule = paper_learning_rate(steps_per_epoch, constant_epochs, decay_epochs, initial_learning_rate)
    return {
        "class_name": "Adam",
        "config": {
            "learning_rate": keras.saving.serialize_keras_object(schedule),
            "beta_1": 0.5,
            "beta_2": 0.999,
        },
    }


# --- History pool -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
class ImageHistoryPool(keras.layers.Layer):
    """A buffer of ``pool_size`` past generated images (Shrivastava et al. 2017, sec. 2.3).

    ``pool(fakes)`` returns a batch for the discriminator: while the pool is filling, each fake
    is stored and returned; afterwards each fake is, with probability 0.5, swapped for a random
    stored image (which it replaces in the pool), else returned as is. The buffer, its fill
    count and the random generator's state are variables saved with the model; images are
    processed in order, so the result is the same as CycleGAN's one-by-one Python loop.
    ``pool_size=0`` returns the fakes unchanged.
    """

    def __init__(self, pool_size=50, image_shape=(256, 256, 3), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.images = self.add_weight(
            shape=(max(self.pool_size, 1),) + self.image_shape, initializer="zeros",
            trainable=False, name="images",
        )
        self.count = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="count"
        )
        self.built = True

    def call(self, fakes):
        fakes = ops.stop_gradient(ops.convert_to_tensor(fakes, "float32"))
        if self.pool_size == 0:
            return fakes
        # Under tf.distribute every replica runs the pool on the global batch (same draws, same
        # buffer, so the mirrored variables stay equal) and keeps its own rows: the pool of one
        # device with the whole batch, not one diverging pool per replica.
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        local = tf.shape(fakes)[0]
        if replicas > 1:
            fakes = context.all_gather(fakes, axis=0)
        batch = tf.shape(fakes)[0]
        draws = keras.random.uniform((batch,), seed=self.seed_generator)
        slots = keras.random.randint((batch,), 0, self.pool_size, seed=self.seed_generator)

        def step(index, pool, count, outputs):
            image = fakes[index]
            filling = count < self.pool_size
            swap = tf.logical_and(tf.logical_not(filling), draws[index] < 0.5)
            slot = tf.where(filling, count, slots[index])
            stored = pool[slot]
            output = tf.where(swap, stored, image)
            pool = tf.tensor_scatter_nd_update(
                pool, [[slot]], [tf.where(tf.logical_or(filling, swap), image, stored)]
            )
            return index + 1, pool, count + tf.cast(filling, "int32"), outputs.write(index, output)

        _, pool, count, outputs = tf.while_loop(
            lambda index, *_: index < batch, step,
            (tf.constant(0), tf.convert_to_tensor(self.images.value), tf.convert_to_tensor(self.count.value),
             tf.TensorArray(tf.float32, size=batch, element_shape=self.image_shape)),
        )
        self.images.assign(pool)
        self.count.assign(count)
        outputs = outputs.stack()
        if replicas > 1:
            start = context.replica_id_in_sync_group * local
            outputs = outputs[start : start + local]
        return tf.ensure_shape(outputs, (None,) + self.image_shape)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        self.images.assign(store["0"])
        self.count.assign(store["1"])
        self.seed_generator.state.assign(store["seed_state"])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape,
                "seed": self.seed}


# --- Networks -----------------------------------------------------------------------------------


def _conv_norm_relu(x, filters, kernel_size, strides=1, reflect=0, transposed=False):
    if reflect:
        x = ReflectionPadding2D(reflect)(x)
    if transposed:
        # PyTorch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1): full 2H+1 output,
        # first row and column cropped.
        x = keras.layers.Conv2DTranspose(filters, kernel_size, strides, kernel_initializer=kernel_init())(x)
        x = keras.layers.Cropping2D(((1, 0), (1, 0)))(x)
    else:
        if strides > 1:
            x = keras.layers.ZeroPadding2D(1)(x)  # PyTorch's padding=1
        x = keras.layers.Conv2D(filters, kernel_size, strides, kernel_initializer=kernel_init())(x)
    x = normalization("instance", affine=False)(x)
    return keras.layers.ReLU()(x)


def residual_block(x, filters):
    """``R``: two reflection-padded 3x3 convs with instance norm, ReLU between, plus identity."""
    y = _conv_norm_relu(x, filters, 3, reflect=1)
    y = ReflectionPadding2D(1)(y)
    y = keras.layers.Conv2D(filters, 3, kernel_initializer=kernel_init())(y)
    y = normalization("instance", affine=False)(y)
    return keras.layers.Add()([x, y])


def resnet_generator(channels, width=64, residual_blocks=9, name="generator"):
    """``c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-C`` (Zhu 2017, appendix 7.2)."""
    images = keras.Input((None, None, channels), name="images")
    x = _conv_norm_relu(images, width, 7, reflect=3)
    x = _conv_norm_relu(x, 2 * width, 3, strides=2)
    x = _conv_norm_relu(x, 4 * width, 3, strides=2)
    for _ in range(residual_blocks):
        x = residual_block(x, 4 * width)
    x = _conv_norm_relu(x, 2 * width, 3, strides=2, transposed=True)
    x = _conv_norm_relu(x, width, 3, strides=2, transposed=True)
    x = ReflectionPadding2D(3)(x)
    outputs = keras.layers.Conv2D(
        channels, 7, activation="tanh", kernel_initializer=kernel_init(), name="translated"
    )(x)
    return keras.Model(images, outputs, name=name)


# --- Model --------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
class CycleGAN(TwoPlayerMixin, keras.Model):
    """CycleGAN: ``model(a)`` is ``generator_ab(a)``; ``fit`` takes unpaired ``(images_a, images_b)``.

    Args:
        generator_ab, generator_ba: ``keras.Model`` translating A -> B and B -> A.
        discriminator_a, discriminator_b: PatchGAN critics of domain A and domain B images.
        image_shape: (H, W, C) of the training images (the history pools' shape).
        loss: name of a loss pair in ``zoo.losses.LOSSES`` (paper: "least_squares").
        cycle_weight: lambda of the cycle-consistency loss (paper: 10).
        identity_weight: identity loss weight as a fraction of lambda (paper: 0.5; 0 = off).
        pool_size: images in each discriminator's history pool (paper: 50; 0 = off).
        seed: seed of the pools' random choices.
    """

    def __init__(
        self, generator_ab, generator_ba, discriminator_a, discriminator_b, image_shape=(256, 256, 3),
        loss="least_squares", cycle_weight=10.0, identity_weight=0.5, pool_size=50, seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator_ab = generator_ab
        self.generator_ba = generator_ba
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.image_shape = tuple(int(d) for d in image_shape)
        self.loss_name = loss
        self.adversarial_loss = zoo_losses.get_loss(loss)
        self.generator_loss_scale = GENERATOR_LOSS_SCALE.get(loss, 1.0)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.pool_size = int(pool_size)
        self.seed = seed
        check_image_size(self.image_shape, self.generator_stride, "training image")
        self.pool_a = ImageHistoryPool(pool_size, self.image_shape, seed=seed, name="pool_a")
        self.pool_b = ImageHistoryPool(pool_size, self.image_shape, seed=None if seed is None else seed + 1,
                                       name="pool_b")
        names = ("d_loss", "g_loss", "d_a_loss", "d_b_loss", "g_ab_adversarial", "g_ba_adversarial",
                 "cycle_loss", "identity_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # all four networks are built functional models

    # --- Translation ---------------------------------------------------------------------------

    @property
    def generator_stride(self):
        return total_stride(self.generator_ab)

    @property
    def translators(self):
        """Named generators, for export (``export.translation``); the first is the default."""
        return {"a_to_b": self.generator_ab, "b_to_a": self.generator_ba}

    def call(self, images_a, training=False):
        return self.generator_ab(images_a, training=training)

    def translate(self, images, direction="a_to_b"):
        """Translate a batch A -> B (``"a_to_b"``) or B -> A (``"b_to_a"``)."""
        if direction not in self.translators:
            raise ValueError(f"direction must be one of {list(self.translators)}, got {direction!r}.")
        check_image_size(tuple(images.shape[1:3]), self.generator_stride, "input")
        return self.translators[direction](images, training=False)

    # --- Training ------------------------------------------------------------------------------

    @property
    def generator_variables(self):
        return self.generator_ab.trainable_variables + self.generator_ba.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables

    @property
    def metrics(self):
        return list(self.trackers.values())

    @staticmethod
    def unpack(data):
        images_a, images_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        if images_b is None:
            raise ValueError("CycleGAN trains on two domains: pass (images_a, images_b).")
        return images_a, images_b

    def generator_losses(self, real_a, real_b, training):
        """G's objective (Zhu 2017, eq. 3 plus the identity term) and the fakes it made."""
        fake_b = self.generator_ab(real_a, training=training)
        fake_a = self.generator_ba(real_b, training=training)
        cycled_a = self.generator_ba(fake_b, training=training)
        cycled_b = self.generator_ab(fake_a, training=training)
        scale = self.generator_loss_scale
        losses = {
            "g_ab_adversarial": scale * self.adversarial_loss.generator(
                self.discriminator_b(fake_b, training=training)),
            "g_ba_adversarial": scale * self.adversarial_loss.generator(
                self.discriminator_a(fake_a, training=training)),
            "cycle_loss": l1_distance(cycled_a, real_a) + l1_distance(cycled_b, real_b),
            "identity_loss": ops.zeros((), "float32"),
        }
        if self.identity_weight:
            losses["identity_loss"] = l1_distance(self.generator_ab(real_b, training=training), real_b) + \
                l1_distance(self.generator_ba(real_a, training=training), real_a)
        losses["g_loss"] = (
            losses["g_ab_adversarial"] + losses["g_ba_adversarial"]
            + self.cycle_weight * losses["cycle_loss"]
            + self.cycle_weight * self.identity_weight * losses["identity_loss"]
        )
        return losses, fake_a, fake_b

    def discriminator_losses(self, real_a, real_b, fake_a, fake_b, training):
        d_a = self.adversarial_loss.discriminator(
            self.discriminator_a(real_a, training=training), self.discriminator_a(fake_a, training=training))
        d_b = self.adversarial_loss.discriminator(
            self.discriminator_b(real_b, training=training), self.discriminator_b(fake_b, training=training))
        return {"d_a_loss": d_a, "d_b_loss": d_b, "d_loss": d_a + d_b}

    def train_step(self, data):
        """One step of both generators, then one of both discriminators on pooled fakes."""
        real_a, real_b = self.unpack(data)
        with tf.GradientTape() as g_tape:
            losses, fake_a, fake_b = self.generator_losses(real_a, real_b, training=True)
        self.apply_player_gradients(self.g_optimizer, g_tape, losses["g_loss"], self.generator_variables)
        pooled_a, pooled_b = self.pool_a(fake_a), self.pool_b(fake_b)
        with tf.GradientTape() as d_tape:
            losses.update(self.discriminator_losses(real_a, real_b, pooled_a, pooled_b, training=True))
        self.apply_player_gradients(self.d_optimizer, d_tape, losses["d_loss"], self.discriminator_variables)
        return self.update_trackers(losses)

    def test_step(self, data):
        """The same losses on held-out images, without updates or pooling."""
        real_a, real_b = self.unpack(data)
        losses, fake_a, fake_b = self.generator_losses(real_a, real_b, training=False)
        losses.update(self.discriminator_losses(real_a, real_b, fake_a, fake_b, training=False))
        return self.update_trackers(losses)

    def update_trackers(self, losses):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # --- Serialisation ---------------------------------------------------------------------------

    NETWORKS = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **self.serialize_networks(),
            "image_shape": self.image_shape,
            "loss": self.loss_name,
            "cycle_weight": self.cycle_weight,
            "identity_weight": self.identity_weight,
            "pool_size": self.pool_size,
            "seed": self.seed,
        }


def optimizers_for_run(steps_per_epoch, epochs, learning_rate=None):
    """Both optimizers with the paper's schedule fitted to a run: constant for the first half of
    ``epochs`` (paper: 100 of 200), then linear decay to 0 over the second half."""
    constant_epochs = epochs // 2
    config = paper_adam(steps_per_epoch, constant_epochs, epochs - constant_epochs,
                        2e-4 if learning_rate is None else learning_rate)
    return {"g_optimizer": config, "d_optimizer": copy.deepcopy(config)}


@register_model(
    "cyclegan",
    paper="Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
    training={"batch_size": 1, "g_optimizer": paper_adam(), "d_optimizer": paper_adam()},
    kind="image_to_image",
    paired=False,
    run_optimizers=optimizers_for_run,
)
def cyclegan(
    image_shape=(256, 256, 3),
    generator_width=64,
    residual_blocks=9,
    discriminator_width=64,
    discriminator_layers=3,
    loss="least_squares",
    cycle_weight=10.0,
    identity_weight=0.5,
    pool_size=50,
    seed=None,
):
    """CycleGAN between two domains of ``image_shape`` images (both with C channels).

    The generators translate any H, W that are multiples of 4; ``image_shape`` fixes the
    training size (the history pools). The training defaults' learning-rate schedule assumes
    horse2zebra's 1334 steps per epoch: pass ``paper_adam(steps_per_epoch)`` for other data.
    """
    image_shape = tuple(int(d) for d in image_shape)
    channels = image_shape[-1]

    def discriminator(name):
        return patchgan_discriminator(
            channels, discriminator_width, discriminator_layers, "instance", affine=False, name=name
        )

    return CycleGAN(
        resnet_generator(channels, generator_width, residual_blocks, name="generator_ab"),
        resnet_generator(channels, generator_width, residual_blocks, name="generator_ba"),
        discriminator("discriminator_a"),
        discriminator("discriminator_b"),
        image_shape=image_shape, loss=loss, cycle_weight=cycle_weight,
        identity_weight=identity_weight, pool_size=pool_size, seed=seed, name="cyclegan",
    )
