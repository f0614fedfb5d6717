"""The Dirac-GAN of Mescheder, Geiger, Nowozin 2018, "Which Training Methods for GANs do
actually Converge?" (ICML 2018, sec. 2).

The data distribution is a Dirac at 0, the generator is ``x = theta`` and the discriminator is
linear, ``D(x) = psi * x``. The unique equilibrium is ``(theta, psi) = (0, 0)``. Both players
are trained by plain gradient descent with learning rate ``h`` on the zoo's own losses
(``zoo.losses``) evaluated on the logits ``D(theta) = psi * theta`` (fake) and ``D(0) = 0``
(real); gradients come from ``tf.GradientTape``:

* unregularised GAN (minimax or non-saturating) and WGAN: the Jacobian at the equilibrium has
  purely imaginary eigenvalues, so simultaneous gradient descent spirals outwards and
  alternating gradient descent circles around the equilibrium without converging (paper
  sec. 2.2, Figure 2; WGAN: sec. 3.2, Figure 3c);
* WGAN-GP (Gulrajani et al. 2017) does not converge either (sec. 3.2, Figure 3d);
* the R1 penalty ``gamma/2 * ||grad_x D(x)||^2`` on real data (eq. 9; here ``gamma/2 psi^2``,
  computed by ``zoo.losses.r1_penalty`` on ``dD/dx = psi``) makes the eigenvalues' real parts
  negative, and gradient descent with a small enough ``h`` converges (sec. 4.1, Figure 3g).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from zoo import losses as zoo_losses

MODES = ("simultaneous", "alternating")
STEPS = 500
LEARNING_RATE = 0.1
GAMMA = 1.0
GP_WEIGHT = 1.0
START = (1.0, 1.0)


@dataclass(frozen=True)
class DiracSetting:
    """A loss pair of ``zoo.losses.LOSSES`` and the penalties added to D's loss."""

    name: str
    loss: str
    description: str
    r1: bool = False
    gradient_penalty: bool = False


SETTINGS = {
    setting.name: setting
    for setting in [
        DiracSetting("minimax", "minimax", "GAN, minimax loss (unregularised)"),
        DiracSetting(
            "non_saturating", "non_saturating", "GAN, non-saturating loss (unregularised)"
        ),
        DiracSetting("wasserstein", "wasserstein", "WGAN without clipping"),
        DiracSetting("wasserstein_gp", "wasserstein", "WGAN-GP", gradient_penalty=True),
        DiracSetting("minimax_r1", "minimax", "GAN, minimax loss + R1 penalty", r1=True),
    ]
}


def discriminator(psi, x):
    """The linear discriminator ``D_psi(x) = psi * x`` on a ``(B, 1)`` batch."""
    return psi * x


class DiracGAN:
    """The scalar players ``theta`` (generator) and ``psi`` (discriminator) and their losses."""

    def __init__(
        self, setting, theta=START[0], psi=START[1], gamma=GAMMA, gp_weight=GP_WEIGHT, seed=0
    ):
        self.setting = setting
        self.pair = zoo_losses.get_loss(setting.loss)
        self.gamma = float(gamma)
        self.gp_weight = float(gp_weight)
        self.theta = tf.Variable(float(theta), name="theta")
        self.psi = tf.Variable(float(psi), name="psi")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def logits(self):
        """``(real_logits, fake_logits)``: D at the data point 0 and at the generated theta."""
        real = tf.zeros((1, 1))
        fake = tf.reshape(self.theta, (1, 1))
        return discriminator(self.psi, real), discriminator(self.psi, fake)

    def input_gradient(self, x):
        """``dD/dx`` at the ``(B, 1)`` points ``x`` (equals psi), kept differentiable wrt psi."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(discriminator(self.psi, x))
        return tape.gradient(total, x)

    def penalty(self):
        """The enabled penalties on D: R1 at the data, WGAN-GP at an interpolate."""
        total = tf.zeros(())
        if self.setting.r1:
            real = tf.zeros((1, 1))
            total += zoo_losses.r1_penalty(self.input_gradient(real), self.gamma)
        if self.setting.gradient_penalty:
            weights = zoo_losses.interpolation_weights(1, 2, seed=self.seed_generator)
            fake = tf.reshape(self.theta, (1, 1))
            point = zoo_losses.interpolate(tf.zeros((1, 1)), fake, weights)
            total += self.gp_weight * zoo_losses.gradient_penalty(self.input_gradient(point))
        return total

    def discriminator_gradient(self):
        """``dL_D/dpsi`` of D's loss plus penalties at the current point."""
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self.logits()
            loss = self.pair.discriminator(real_logits, fake_logits) + self.penalty()
        return tape.gradient(loss, self.psi)

    def generator_gradient(self):
        """``dL_G/dtheta`` of G's loss at the current point."""
        with tf.GradientTape() as tape:
            _, fake_logits = self.logits()
            loss = self.pair.generator(fake_logits)
        return tape.gradient(loss, self.theta)

    @tf.function
    def simultaneous_step(self, lr):
        """Both players step from the same point (simultaneous gradient descent)."""
        d_grad = self.discriminator_gradient()
        g_grad = self.generator_gradient()
        self.psi.assign_sub(lr * d_grad)
        self.theta.assign_sub(lr * g_grad)

    @tf.function
    def alternating_step(self, lr):
        """D steps first, then G against the updated D (the order of ``AdversarialModel``)."""
        self.psi.assign_sub(lr * self.discriminator_gradient())
        self.theta.assign_sub(lr * self.generator_gradient())

    def point(self):
        return float(self.theta.numpy()), float(self.psi.numpy())


def trajectory(setting, mode="simultaneous", steps=STEPS, lr=LEARNING_RATE, start=START, **kwargs):
    """``(steps + 1, 2)`` array of ``(theta, psi)`` from ``start`` under ``steps`` GD steps."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    game = DiracGAN(setting, *start, **kwargs)
    step = game.simultaneous_step if mode == "simultaneous" else game.alternating_step
    lr = tf.constant(float(lr))
    points = [game.point()]
    for _ in range(steps):
        step(lr)
        points.append(game.point())
    return np.asarray(points)


def summarise(points):
    """Distances of a trajectory from the equilibrium (0, 0)."""
    distances = np.hypot(points[:, 0], points[:, 1])
    return {
        "initial_distance": float(distances[0]),
        "final_distance": float(distances[-1]),
        "max_distance": float(np.nanmax(distances)) if np.isfinite(distances).any() else math.inf,
        "final_point": [float(points[-1, 0]), float(points[-1, 1])],
    }


def run(
    names=None,
    modes=MODES,
    steps=STEPS,
    lr=LEARNING_RATE,
    start=START,
    gamma=GAMMA,
    gp_weight=GP_WEIGHT,
):
    """Run every setting in ``names`` under every mode; returns (summary dict, trajectories)."""
    names = list(SETTINGS) if names is None else list(names)
    summary = {
        "steps": steps,
        "lr": lr,
        "start": list(start),
        "gamma": gamma,
        "gp_weight": gp_weight,
        "results": {},
    }
    trajectories = {}
    for name in names:
        for mode in modes:
            points = trajectory(
                SETTINGS[name], mode, steps, lr, start, gamma=gamma, gp_weight=gp_weight
            )
            summary["results"].setdefault(name, {})[mode] = summarise(points)
            trajectories[(name, mode)] = points
    return summary, trajectories


def plot(trajectories, path, title=None):
    """Trajectories in the (theta, psi) plane, one panel per setting and mode (cf. Figures 2, 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for name, _ in trajectories))
    modes = list(dict.fromkeys(mode for _, mode in trajectories))
    figure, axes = plt.subplots(
        len(modes), len(names), figsize=(3.2 * len(names), 3.2 * len(modes)), squeeze=False
    )
    for (name, mode), points in trajectories.items():
        axis = axes[modes.index(mode)][names.index(name)]
        _plot_one(axis, points, f"{name}\n{mode}")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_one(axis, points, title):
    finite = points[np.isfinite(points).all(axis=1)]
    axis.plot(finite[:, 0], finite[:, 1], linewidth=0.8)
    axis.plot(*finite[0], "o", color="tab:green", label="start")
    axis.plot(*finite[-1], "s", color="tab:red", label="end")
    axis.plot(0, 0, "*", color="black", markersize=10, label="equilibrium")
    limit = max(1.5, float(np.abs(finite).max()) * 1.05)
    axis.set_xlim(-limit, limit)
    axis.set_ylim(-limit, limit)
    axis.set_aspect("equal")
    axis.set_xlabel("theta (generator)")
    axis.set_ylabel("psi (discriminator)")
    axis.set_title(title, fontsize=9)


def markdown_table(summary):
    """The distances of ``run``'s summary as a markdown table, one row per setting and mode."""
    lines = [
        "| setting | update | initial distance | final distance | max distance | final / initial |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, by_mode in summary["results"].items():
        for mode, result in by_mode.items():
            ratio = result["final_distance"] / result["initial_distance"]
            lines.append(
                f"| {name} | {mode} | {result['initial_distance']:.3f} | "
                f"{result['final_distance']:.3g} | {result['max_distance']:.3f} | {ratio:.3g} |"
            )
    return "\n".join(lines)
