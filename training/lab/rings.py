"""Eight Gaussians on a ring: the mode-collapse benchmark of Metz et al. 2016.

Data (Metz, Poole, Pfau, Sohl-Dickstein 2016, "Unrolled Generative Adversarial Networks",
sec. 3.1): a mixture of 8 equally weighted Gaussians with std 0.02 whose means are evenly
spaced on a circle of radius 2.

Networks (Metz et al. 2016, App. A): the generator maps ``z ~ N(0, I_256)`` through two
fully connected ReLU layers of 128 units to a linear 2-D output, weights initialised
orthogonal with gain 0.8. Metz's discriminator scales its input by 1/4, then has one ReLU layer
and a linear logit, and both players use Adam(1e-4, beta_1 = 0.5). That recipe is the ``metz``
row. The other rows give the discriminator two hidden ReLU layers of 128 units, like the
generator, and use Adam(1e-3, beta_1 = 0.5), so that a run of a few thousand steps can reach
the modes. With Metz's one-layer discriminator, every loss and stabiliser we tried collapsed to a
single wandering mode (exploratory runs, not in the table). Every setting trains the zoo's
``AdversarialModel`` on these MLPs. A setting is a row of ``SETTINGS``.

Metric (Srivastava et al. 2017, "VEEGAN", sec. 5.1): on 2,500 generated samples, a sample is
*high quality* if it lies within 3 standard deviations of its nearest mode centre. We count a
mode as *covered* when at least ``MIN_COUNT`` = 20 of the 2,500 samples are high-quality
samples of it (the threshold below which Lin et al. 2018, "PacGAN", call a mode lost), so a few
stray samples do not count as coverage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from zoo.base import AdversarialModel
from zoo.registry import adam, rmsprop

NUM_MODES = 8
RADIUS = 2.0
STD = 0.02
LATENT_DIM = 256
HIDDEN = 128
D_DEPTH = 2
BATCH_SIZE = 256
EVAL_SAMPLES = 2500
QUALITY_STDS = 3.0
MIN_COUNT = 20
STEPS = 6000
WGAN_STEPS = 2000  # x 5 critic steps: 10,000 D steps, within the time budget
SEEDS = (0, 1, 2)

# --- Data and metric -------------------------------------------------------------------------


def mode_centres(num_modes=NUM_MODES, radius=RADIUS):
    """``(num_modes, 2)`` centres evenly spaced on a circle, the first at angle 0."""
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype("float32")


def sample_ring(count, seed):
    """``count`` points of the mixture, drawn with the stateless seed ``seed`` (2 ints)."""
    centres = tf.constant(mode_centres())
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, "int64"), 2)
    modes = tf.random.stateless_uniform((count,), seeds[0], 0, NUM_MODES, dtype="int32")
    noise = tf.random.stateless_normal((count, 2), seeds[1], stddev=STD)
    return tf.gather(centres, modes) + noise


def ring_dataset(batch_size, seed):
    """An endless ``tf.data`` stream of ``(batch_size, 2)`` real batches, seeded by ``seed``."""
    counter = tf.data.Dataset.counter()
    batches = counter.map(
        lambda step: sample_ring(batch_size, tf.stack([tf.cast(seed, "int64"), step])),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def mode_metrics(samples, min_count=MIN_COUNT, centres=None, std=STD, max_stds=QUALITY_STDS):
    """Modes covered and high-quality share of ``(N, 2)`` samples (VEEGAN's convention).

    Returns ``{"modes": int, "quality": float, "counts": [high-quality samples per mode]}``.
    """
    samples = np.asarray(samples, dtype="float64").reshape(-1, 2)
    centres = mode_centres() if centres is None else np.asarray(centres, dtype="float64")
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    high_quality = distances.min(axis=1) <= max_stds * std
    counts = np.bincount(nearest[high_quality], minlength=len(centres))
    return {
        "modes": int((counts >= min_count).sum()),
        "quality": float(high_quality.mean()) if len(samples) else 0.0,
        "counts": counts.tolist(),
    }


# --- Networks ----------------------------------------------------------------------------------


def build_generator(latent_dim=LATENT_DIM, hidden=HIDDEN):
    """Metz et al. 2016, App. A: z -> 128 ReLU -> 128 ReLU -> 2, orthogonal init (gain 0.8)."""
    init = keras.initializers.Orthogonal(gain=0.8)
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(hidden, activation="relu", kernel_initializer=init)(z)
    h = keras.layers.Dense(hidden, activation="relu", kernel_initializer=init)(h)
    x = keras.layers.Dense(2, kernel_initializer=init)(h)
    return keras.Model(z, x, name="ring_generator")


def build_discriminator(hidden=HIDDEN, spectral_norm=False, depth=D_DEPTH):
    """x/4 (Metz et al. 2016, App. A) -> ``depth`` x 128 ReLU -> logit; optional spectral norm."""

    def dense(units, **kwargs):
        layer = keras.layers.Dense(units, **kwargs)
        return keras.layers.SpectralNormalization(layer) if spectral_norm else layer

    x = keras.Input((2,))
    h = keras.layers.Rescaling(0.25)(x)
    for _ in range(depth):
        h = dense(hidden, activation="relu")(h)
    logits = dense(1)(h)
    return keras.Model(x, logits, name="ring_discriminator")


# --- Settings ------------------------------------------------------------------------------------

ADAM = adam(1e-3, beta_1=0.5)


@dataclass(frozen=True)
class RingSetting:
    """One row of the experiment: a loss, its stabilisers, networks, optimizers, steps and seeds."""

    name: str
    loss: str
    description: str
    options: dict = field(default_factory=dict)  # AdversarialModel keyword arguments
    spectral_norm: bool = False
    d_depth: int = D_DEPTH
    g_optimizer: dict = field(default_factory=lambda: ADAM)
    d_optimizer: dict = field(default_factory=lambda: ADAM)
    steps: int = STEPS  # training steps: n_critic D steps + one G step each (AdversarialModel)
    seeds: tuple = SEEDS


SETTINGS = {
    setting.name: setting
    for setting in [
        RingSetting("minimax", "minimax", "minimax (saturating) GAN, Goodfellow 2014"),
        RingSetting("non_saturating", "non_saturating", "non-saturating GAN, Goodfellow 2014"),
        RingSetting("least_squares", "least_squares", "LSGAN a=0, b=c=1, Mao 2017"),
        RingSetting("hinge", "hinge", "hinge loss, Lim & Ye 2017"),
        RingSetting(
            "wgan_clip",
            "wasserstein",
            "WGAN, clip 0.01, n_critic 5, RMSprop 5e-4 (paper: 5e-5), Arjovsky 2017",
            options={"clip_value": 0.01, "n_critic": 5},
            steps=WGAN_STEPS,
            g_optimizer=rmsprop(5e-4),
            d_optimizer=rmsprop(5e-4),
        ),
        RingSetting(
            "wgan_gp",
            "wasserstein",
            "WGAN-GP, lambda 1, n_critic 5, Adam(1e-3, 0.5, 0.9), Gulrajani 2017",
            options={"gradient_penalty_weight": 1.0, "n_critic": 5},
            steps=WGAN_STEPS,
            g_optimizer=adam(1e-3, beta_1=0.5, beta_2=0.9),
            d_optimizer=adam(1e-3, beta_1=0.5, beta_2=0.9),
        ),
        RingSetting(
            "ns_r1",
            "non_saturating",
            "non-saturating + R1 gamma 0.01, Mescheder 2018",
            options={"r1_gamma": 0.01},
        ),
        RingSetting(
            "ns_instance_noise",
            "non_saturating",
            "non-saturating + instance noise sigma 0.1, annealed to 0 over the first half, "
            "Sønderby 2017",
            options={"instance_noise": 0.1},
        ),
        RingSetting(
            "ns_label_smoothing",
            "non_saturating",
            "non-saturating + one-sided label smoothing 0.1, Salimans 2016",
            options={"label_smoothing": 0.1},
        ),
        RingSetting(
            "ns_spectral_norm",
            "non_saturating",
            "non-saturating + spectral normalisation of every D layer, Miyato 2018",
            spectral_norm=True,
        ),
        RingSetting(
            "metz",
            "minimax",
            "Metz 2016 App. A recipe: minimax loss, D with 1 hidden layer, Adam 1e-4",
            d_depth=1,
            g_optimizer=adam(1e-4, beta_1=0.5),
            d_optimizer=adam(1e-4, beta_1=0.5),
        ),
    ]
}


# --- Training and evaluation ---------------------------------------------------------------------


def build_model(setting, seed, steps):
    """The compiled ``AdversarialModel`` of ``setting``, its weights drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    options = dict(setting.options)
    if options.get("instance_noise"):  # annealed over the first half of the D steps
        options.setdefault("instance_noise_steps", max(1, steps * n_critic(setting) // 2))
    model = AdversarialModel(
        build_generator(),
        build_discriminator(spectral_norm=setting.spectral_norm, depth=setting.d_depth),
        loss=setting.loss,
        seed=seed,
        **options,
    )
    model.compile(
        g_optimizer=keras.optimizers.get(setting.g_optimizer),
        d_optimizer=keras.optimizers.get(setting.d_optimizer),
        # Many steps per tf.function call; a divisor of ``steps`` so no call runs short.
        steps_per_execution=math.gcd(steps, 500),
    )
    return model


def n_critic(setting):
    return int(setting.options.get("n_critic", 1))


def train_once(setting, seed, steps, batch_size=BATCH_SIZE):
    """Train ``setting`` for ``steps`` steps with ``seed``; return its samples and metrics.

    A step is ``n_critic`` discriminator steps and one generator step, each on ``batch_size``
    samples: ``AdversarialModel`` deals every real batch into ``n_critic`` slices, so the real
    batches hold ``n_critic * batch_size`` samples.
    """
    start = time.perf_counter()
    model = build_model(setting, seed, steps)
    data = ring_dataset(n_critic(setting) * batch_size, seed)
    model.fit(data, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    samples = np.asarray(model.sample(EVAL_SAMPLES, seed=10_000 + seed))
    metrics = mode_metrics(samples)
    return {
        "setting": setting.name,
        "seed": seed,
        "steps": steps,
        **metrics,
        "seconds": time.perf_counter() - start,
        "samples": samples,
    }


def run(names=None, steps=None, seeds=None, batch_size=BATCH_SIZE, log=None):
    """Train every setting in ``names`` (default: all) for every seed; returns the run records.

    ``steps`` and ``seeds`` override the table's per-setting values when given.
    """
    runs = []
    for name in names or list(SETTINGS):
        setting = SETTINGS[name]
        for seed in setting.seeds if seeds is None else seeds:
            record = train_once(setting, seed, steps or setting.steps, batch_size)
            runs.append(record)
            if log:
                log(
                    f"{name} seed={seed} steps={record['steps']}: modes={record['modes']} "
                    f"quality={record['quality']:.3f} ({record['seconds']:.0f} s)"
                )
    return runs


def aggregate(runs):
    """One row per setting: seeds, steps, modes covered and quality as mean and std over seeds."""
    rows = []
    for name in dict.fromkeys(record["setting"] for record in runs):
        records = [record for record in runs if record["setting"] == name]
        modes = np.array([record["modes"] for record in records], dtype=float)
        quality = np.array([record["quality"] for record in records])
        rows.append(
            {
                "setting": name,
                "seeds": [record["seed"] for record in records],
                "steps": sorted({record["steps"] for record in records}),
                "modes_mean": float(modes.mean()),
                "modes_std": float(modes.std()),
                "quality_mean": float(quality.mean()),
                "quality_std": float(quality.std()),
                "per_seed_modes": modes.astype(int).tolist(),
                "seconds_per_run": float(np.mean([record["seconds"] for record in records])),
            }
        )
    return rows


def plotRingSetting(records, path):
    """Scatter of each seed's 2,500 samples over the 8 mode centres (one panel per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = mode_centres()
    figure, axes = plt.subplots(1, len(records), figsize=(3.2 * len(records), 3.4), squeeze=False)
    for axis, record in zip(axes[0], records):
        samples = record["samples"]
        axis.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", linewidths=0)
        axis.scatter(centres[:, 0], centres[:, 1], s=30, marker="x", color="tab:red")
        axis.set_xlim(-3, 3)
        axis.set_ylim(-3, 3)
        axis.set_aspect("equal")
        title = f"seed {record['seed']}: {record['modes']} modes, {record['quality']:.0%} HQ"
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"{records[0]['setting']} ({records[0]['steps']} steps)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_all(runs, directory):
    """One PNG per setting in ``directory``; returns ``{setting: path}``."""
    paths = {}
    for name in dict.fromkeys(record["setting"] for record in runs):
        paths[name] = f"{directory}/{name}.png"
        plotRingSetting([record for record in runs if record["setting"] == name], paths[name])
    return paths


def markdown_table(rows):
    """The aggregated rows as a markdown table."""
    lines = [
        "| setting | what | seeds | steps | modes covered (of 8) | per seed "
        "| high-quality share | s / run |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {SETTINGS[row['setting']].description} | "
            f"{','.join(map(str, row['seeds']))} | {','.join(map(str, row['steps']))} | "
            f"{row['modes_mean']:.1f} ± {row['modes_std']:.1f} | "
            f"{' '.join(map(str, row['per_seed_modes']))} | "
            f"{row['quality_mean']:.1%} ± {row['quality_std']:.1%} | "
            f"{row['seconds_per_run']:.0f} |"
        )
    return "\n".join(lines)
