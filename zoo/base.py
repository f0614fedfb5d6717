"""The adversarial base model shared by every unconditional GAN of the zoo.

``AdversarialModel`` wires a generator ``G: z -> x`` and a discriminator (critic)
``D: x -> logits`` together with a named loss pair from ``zoo.losses`` and the stabilisers of
the literature. Its ``train_step`` is Goodfellow et al. 2014, Algorithm 1, generalised as in
Arjovsky et al. 2017, Algorithm 1: every step updates D ``n_critic`` times, each on its own
slice of the incoming real batch, then G once. A variant is a choice of networks and
hyper-parameters (see ``zoo/models/``), not a new training loop.
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf
from keras import ops

from zoo import losses as zoo_losses

LATENT_DISTRIBUTIONS = ("normal", "uniform")

# Training options every variant accepts, with their "off" defaults; a variant's builder may
# override any of them with its paper's value (e.g. n_critic=5 for WGAN).
STABILISER_DEFAULTS = {
    "n_critic": 1,
    "gradient_penalty_weight": 0.0,
    "r1_gamma": 0.0,
    "clip_value": None,
    "label_smoothing": 0.0,
    "instance_noise": 0.0,
    "instance_noise_steps": 10_000,
}


def replicas_in_sync():
    """Replicas whose gradients the optimizer sums (1 outside ``tf.distribute``)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_share(draw, batch_size):
    """This replica's rows of ``draw(global_batch)``: random inputs the zoo draws (noise,
    interpolation weights, instance noise) are the single-replica run's, cut by replica.

    Every replica draws the whole global batch from the same seed state and keeps its slice, so
    replicas do not repeat each other's noise (a per-replica draw from a mirrored
    ``SeedGenerator`` gives every replica the same values) and a step on N replicas of B
    examples draws exactly what one replica of N*B examples would.
    """
    context = tf.distribute.get_replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    if replicas == 1:
        return draw(batch_size)
    start = context.replica_id_in_sync_group * batch_size
    return draw(batch_size * replicas)[start : start + batch_size]


def roll_global_batch(x, shift=1):
    """``ops.roll(x, shift, axis=0)`` over the global batch: this replica's rows of the rolled
    concatenation of every replica's ``x``, so pairings across the batch (GAN-CLS's wrong
    captions) are the single-replica run's on any number of replicas. No gradient flows back
    across replicas (use it on inputs, not on what is trained)."""
    context = tf.distribute.get_replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    if replicas == 1:
        return ops.roll(x, shift, axis=0)
    batch_size = ops.shape(x)[0]
    start = context.replica_id_in_sync_group * batch_size
    everything = context.all_gather(ops.stop_gradient(x), axis=0)
    return ops.roll(everything, shift, axis=0)[start : start + batch_size]


def reducible_logs(logs):
    """Logs ``fit`` can reduce: rank-1 under a multi-worker strategy, whose reduction is along
    axis 0 and rejects scalars (Keras issue 20585), scalars otherwise."""
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and getattr(
        strategy.extended, "_in_multi_worker_mode", lambda: False)()
    if not multi_worker:
        return logs
    return {key: ops.reshape(value, (1,)) for key, value in logs.items()}


def _with_reducible_logs(step):
    def wrapped(self, data):
        return reducible_logs(step(self, data))

    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = step.__name__, step.__doc__, step
    return wrapped


class TwoPlayerMixin:
    """What every zoo model shares: ``compile(g_optimizer, d_optimizer)`` and the ``.keras``
    round trip of both optimizers and of the sub-networks named in ``NETWORKS``.

    ``generator_variables`` / ``discriminator_variables`` default to the trainable variables
    of ``generator`` / ``discriminator``; models with several networks per player override them.

    Distribution: a subclass's ``train_step`` / ``test_step`` return values pass through
    ``reducible_logs`` (wrapped here, once for every model), and ``apply_player_gradients`` is
    the one place where a player's gradients are scaled for the replicas and the loss scale.
    """

    NETWORKS = ("generator", "discriminator")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("train_step", "test_step"):
            if name in cls.__dict__:
                setattr(cls, name, _with_reducible_logs(cls.__dict__[name]))

    @property
    def generator_variables(self):
        return self.generator.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator.trainable_variables

    def serialize_networks(self):
        """The ``NETWORKS`` as nested Keras configs, for ``get_config``."""
        return {key: keras.saving.serialize_keras_object(getattr(self, key)) for key in self.NETWORKS}

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialisation consumes the nested dicts
        for key in cls.NETWORKS:
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Compile with one optimizer per player; ``kwargs`` go to ``keras.Model.compile``."""
        # No optimizer of keras.Model's own (its default would be an unused RMSprop, saved with
        # the model and, under mixed precision, wrapped for loss scaling).
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = self._loss_scaled(keras.optimizers.get(g_optimizer))
        self.d_optimizer = self._loss_scaled(keras.optimizers.get(d_optimizer))
        # Build the slots now, outside any traced function or distribution replica context.
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator_variables)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return {
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
        }

    def compile_from_config(self, config):
        self.compile(
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            jit_compile=config.get("jit_compile", "auto"),
            steps_per_execution=config.get("steps_per_execution", 1),
        )

    def _loss_scaled(self, optimizer):
        """Wrap ``optimizer`` in a ``LossScaleOptimizer`` when the model computes in float16
        (``mixed_float16``), as ``keras.Model.compile`` does for its single optimizer."""
        if self.dtype_policy.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def apply_player_gradients(self, optimizer, tape, loss, variables):
        """One optimizer step of a player on ``d loss / d variables``.

        ``loss`` is this replica's mean over its own examples; the TensorFlow optimizer sums the
        replicas' gradients, so the gradient is taken of ``loss / replicas`` (what Keras's own
        losses do, ``keras.losses.Loss`` with ``scale_loss_for_distribution``) and of the
        optimizer's loss scale (``LossScaleOptimizer`` under mixed precision, which unscales).
        Both factors seed the backward pass (``output_gradients``), so the tape may be closed
        and the trackers keep the unscaled loss. Every model steps its players through here.
        """
        seed = optimizer.scale_loss(ops.cast(1.0 / replicas_in_sync(), loss.dtype))
        gradients = tape.gradient(loss, variables, output_gradients=ops.cast(seed, loss.dtype))
        optimizer.apply_gradients(zip(gradients, variables))


@keras.saving.register_keras_serializable(package="zoo")
class AdversarialModel(TwoPlayerMixin, keras.Model):
    """An unconditional GAN: ``model(z)`` is ``generator(z)``; ``fit`` trains both players.

    Args:
        generator: ``keras.Model`` mapping ``(B, latent_dim)`` noise to images.
        discriminator: ``keras.Model`` mapping images to logits ``(B, 1)`` or ``(B, H, W, 1)``.
        loss: name of a loss pair in ``zoo.losses.LOSSES``.
        n_critic: discriminator steps per generator step (Arjovsky 2017 uses 5).
        latent_distribution: ``"normal"`` (N(0, I)) or ``"uniform"`` (U(-1, 1)) noise.
        gradient_penalty_weight: lambda of the WGAN-GP penalty (Gulrajani 2017), 0 = off.
        r1_gamma: gamma of the R1 penalty on real data (Mescheder 2018), 0 = off.
        clip_value: clip critic weights to ``[-c, c]`` after each step (Arjovsky 2017), None = off.
        label_smoothing: one-sided label smoothing s (Salimans 2016); cross-entropy losses only.
        instance_noise: initial std of Gaussian noise added to D's inputs (Sønderby et al. 2017),
            annealed linearly to 0 over ``instance_noise_steps`` discriminator steps.
        seed: seed of the model's ``keras.random.SeedGenerator`` (noise, interpolation weights).
    """

    def __init__(
        self,
        generator,
        discriminator,
        loss="non_saturating",
        n_critic=1,
        latent_distribution="normal",
        gradient_penalty_weight=0.0,
        r1_gamma=0.0,
        clip_value=None,
        label_smoothing=0.0,
        instance_noise=0.0,
        instance_noise_steps=10_000,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._validate(loss, n_critic, latent_distribution, label_smoothing, instance_noise_steps)
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.adversarial_loss = zoo_losses.get_loss(loss)
        self.n_critic = int(n_critic)
        self.latent_distribution = latent_distribution
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.r1_gamma = float(r1_gamma)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.label_smoothing = float(label_smoothing)
        self.instance_noise = float(instance_noise)
        self.instance_noise_steps = int(instance_noise_steps)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.penalty_tracker = keras.metrics.Mean(name="d_penalty")
        self.built = True  # both networks are built functional models

    def _validate(self, loss, n_critic, latent_distribution, label_smoothing, noise_steps):
        zoo_losses.get_loss(loss)
        if int(n_critic) < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}.")
        if latent_distribution not in LATENT_DISTRIBUTIONS:
            raise ValueError(
                f"latent_distribution must be one of {LATENT_DISTRIBUTIONS}, got {latent_distribution!r}."
            )
        if label_smoothing and not zoo_losses.get_loss(loss).supports_label_smoothing:
            raise ValueError(
                f"label_smoothing applies to cross-entropy losses only, not {loss!r}; set it to 0."
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        if int(noise_steps) < 1:
            raise ValueError(f"instance_noise_steps must be >= 1, got {noise_steps}.")

    # --- Sampling ------------------------------------------------------------------------------

    @property
    def latent_dim(self):
        return int(self.generator.input_shape[-1])

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.generator.output_shape[1:])

    def sample_latent(self, batch_size, seed=None):
        """Draw ``(batch_size, latent_dim)`` noise from the model's latent distribution."""
        seed = self.seed_generator if seed is None else seed

        def draw(count):
            shape = (count, self.latent_dim)
            if self.latent_distribution == "uniform":
                return keras.random.uniform(shape, minval=-1.0, maxval=1.0, seed=seed)
            return keras.random.normal(shape, seed=seed)

        return replica_share(draw, batch_size)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sample(self, num_samples, seed=None):
        """Generate ``num_samples`` images in [-1, 1] (inference mode)."""
        return self.generator(self.sample_latent(num_samples, seed), training=False)

    # --- Training ------------------------------------------------------------------------------

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        if self.gradient_penalty_weight or self.r1_gamma:
            trackers.append(self.penalty_tracker)
        return trackers

    def train_step(self, data):
        """``n_critic`` discriminator steps, then one generator step (Arjovsky 2017, Alg. 1).

        The real batch is dealt into ``n_critic`` interleaved slices, so every critic step sees
        its own real samples, as in the paper; feed batches of ``n_critic * m`` images for ``m``
        per critic step (``training.train`` does). A batch of fewer than ``n_critic`` images (a
        data set's last, a tiny fine-tuning set) deals its images round-robin, so no critic step
        sees an empty batch (whose NaN batch statistics would poison every weight). No control
        flow depends on tensors, so the step runs unchanged under XLA and ``tf.distribute``.
        """
        real = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = ops.shape(real)[0]
        for index in range(self.n_critic):
            critic_batch = real[index % batch_size :: self.n_critic] if self.n_critic > 1 else real
            self.discriminator_step(critic_batch, ops.shape(critic_batch)[0])
        self.generator_step(ops.shape(critic_batch)[0])
        return {m.name: m.result() for m in self.metrics}  # through reducible_logs

    def discriminator_step(self, real, batch_size):
        """One optimizer step of D on a real batch and a fresh fake batch; returns D's loss."""
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            # float32 like the real batch also when G computes in float16 (mixed precision)
            fake = ops.cast(self.generator(z, training=True), real.dtype)
            real_input = self.add_instance_noise(real)
            fake_input = self.add_instance_noise(fake)
            real_logits = self.discriminator(real_input, training=True)
            fake_logits = self.discriminator(fake_input, training=True)
            d_loss = self.discriminator_loss(real_logits, fake_logits)
            penalty = self.discriminator_penalty(real_input, fake_input)
            total = d_loss + penalty
        variables = self.discriminator_variables
        self.apply_player_gradients(self.d_optimizer, tape, total, variables)
        if self.clip_value is not None:
            zoo_losses.clip_weights(variables, self.clip_value)
        self.d_loss_tracker.update_state(d_loss)
        self.penalty_tracker.update_state(penalty)
        return d_loss

    def generator_step(self, batch_size):
        """One optimizer step of G against the current D; returns G's loss."""
        z = self.sample_latent(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            fake_logits = self.discriminator(self.add_instance_noise(fake), training=True)
            g_loss = self.adversarial_loss.generator(fake_logits)
        self.apply_player_gradients(self.g_optimizer, tape, g_loss, self.generator_variables)
        self.g_loss_tracker.update_state(g_loss)
        return g_loss

    def discriminator_loss(self, real_logits, fake_logits):
        if self.label_smoothing:
            return self.adversarial_loss.discriminator(
                real_logits, fake_logits, label_smoothing=self.label_smoothing
            )
        return self.adversarial_loss.discriminator(real_logits, fake_logits)

    def discriminator_penalty(self, real, fake):
        """Sum of the enabled gradient penalties (WGAN-GP on interpolates, R1 on real data)."""
        penalty = ops.zeros((), "float32")
        if self.gradient_penalty_weight:
            weights = replica_share(
                lambda count: zoo_losses.interpolation_weights(
                    count, len(real.shape), seed=self.seed_generator),
                ops.shape(real)[0],
            )
            interpolates = zoo_losses.interpolate(real, fake, weights)
            gradients = self.discriminator_input_gradients(interpolates)
            penalty += self.gradient_penalty_weight * zoo_losses.gradient_penalty(gradients)
        if self.r1_gamma:
            gradients = self.discriminator_input_gradients(real)
            penalty += zoo_losses.r1_penalty(gradients, self.r1_gamma)
        return penalty

    def discriminator_input_gradients(self, inputs):
        """``d sum(D(x)) / dx``: per-example input gradients of D (TensorFlow tape)."""
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = ops.sum(self.discriminator(inputs, training=True))
        return tape.gradient(total, inputs)

    def add_instance_noise(self, images):
        """Add N(0, sigma_t^2) noise, sigma_t annealed linearly from ``instance_noise`` to 0."""
        if not self.instance_noise:
            return images
        progress = ops.cast(self.d_optimizer.iterations, "float32") / self.instance_noise_steps
        sigma = self.instance_noise * ops.maximum(0.0, 1.0 - progress)
        shape = tuple(ops.shape(images)[1:])
        noise = replica_share(
            lambda count: keras.random.normal((count,) + shape, seed=self.seed_generator),
            ops.shape(images)[0],
        )
        return images + sigma * noise

    # --- Serialisation ---------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **self.serialize_networks(),
            "loss": self.loss_name,
            "n_critic": self.n_critic,
            "latent_distribution": self.latent_distribution,
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "r1_gamma": self.r1_gamma,
            "clip_value": self.clip_value,
            "label_smoothing": self.label_smoothing,
            "instance_noise": self.instance_noise,
            "instance_noise_steps": self.instance_noise_steps,
            "seed": self.seed,
        }
