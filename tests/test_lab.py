"""The convergence lab: Dirac-GAN dynamics, the eight-Gaussians metric and a short ring run."""

import json
import math

import numpy as np
import pytest

from training.lab import dirac, rings
from training.lab import __main__ as lab_cli

STEPS = 200
LR = 0.1


def distances(name, mode, steps=STEPS, **kwargs):
    result = dirac.summarise(dirac.trajectory(dirac.SETTINGS[name], mode, steps, LR, **kwargs))
    return result["initial_distance"], result["final_distance"]


# --- Dirac-GAN (Mescheder et al. 2018) ------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimax", "wasserstein"])
def test_unregularised_simultaneous_gd_spirals_outwards(name):
    initial, final = distances(name, "simultaneous")
    assert final > initial


@pytest.mark.parametrize("name", ["minimax", "wasserstein"])
def test_unregularised_alternating_gd_does_not_converge(name):
    initial, final = distances(name, "alternating")
    assert final >= 0.9 * initial


@pytest.mark.parametrize("mode", dirac.MODES)
def test_r1_penalty_converges_to_the_equilibrium(mode):
    initial, final = distances("minimax_r1", mode, gamma=1.0)
    assert final < 0.1 * initial


def test_dirac_gradients_match_the_closed_form():
    """Minimax + R1, s = sigma(psi theta): dL_D/dpsi = s theta + gamma psi, dL_G/dtheta = -s psi."""
    theta, psi, gamma = 0.7, -1.3, 0.5
    game = dirac.DiracGAN(dirac.SETTINGS["minimax_r1"], theta, psi, gamma=gamma)
    sigma = 1.0 / (1.0 + math.exp(-psi * theta))
    expected = sigma * theta + gamma * psi
    assert float(game.discriminator_gradient()) == pytest.approx(expected, rel=1e-5)
    assert float(game.generator_gradient()) == pytest.approx(-sigma * psi, rel=1e-5)


def test_wgan_gp_penalises_the_norm_of_psi():
    """WGAN-GP: dL_D/dpsi = theta + 2 lambda (|psi| - 1) sign(psi) whatever the interpolate."""
    theta, psi, weight = 0.4, 2.0, 0.3
    game = dirac.DiracGAN(dirac.SETTINGS["wasserstein_gp"], theta, psi, gp_weight=weight)
    expected = theta + 2 * weight * (abs(psi) - 1.0)
    assert float(game.discriminator_gradient()) == pytest.approx(expected, rel=1e-4)


# --- Eight Gaussians: the metric ------------------------------------------------------------------


def test_samples_at_every_centre_cover_all_modes():
    samples = np.repeat(rings.mode_centres(), 2500 // 8, axis=0)
    result = rings.mode_metrics(samples)
    assert result["modes"] == 8
    assert result["quality"] == 1.0


def test_samples_at_one_centre_cover_one_mode():
    samples = np.repeat(rings.mode_centres()[3:4], 2500, axis=0)
    result = rings.mode_metrics(samples)
    assert result["modes"] == 1
    assert result["quality"] == 1.0
    assert result["counts"][3] == 2500


def test_far_away_samples_have_no_quality():
    samples = np.full((2500, 2), 10.0)
    result = rings.mode_metrics(samples)
    assert result["modes"] == 0
    assert result["quality"] == 0.0


def test_a_handful_of_stray_samples_does_not_cover_a_mode():
    centres = rings.mode_centres()
    samples = np.concatenate(
        [np.repeat(centres[:1], 2490, axis=0), np.repeat(centres[1:2], 10, axis=0)]
    )
    assert rings.mode_metrics(samples)["modes"] == 1


def test_real_data_covers_every_mode_with_three_sigma_quality():
    result = rings.mode_metrics(np.asarray(rings.sample_ring(2500, [0, 1])))
    assert result["modes"] == 8
    # P(|N(0, s^2 I_2)| <= 3 s) = 1 - exp(-9/2) = 0.989
    assert result["quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


# --- Eight Gaussians: training ----------------------------------------------------------------


def test_short_ring_training_returns_finite_metrics():
    record = rings.train_once(rings.SETTINGS["non_saturating"], seed=0, steps=300, batch_size=64)
    assert 0 <= record["modes"] <= 8
    assert 0.0 <= record["quality"] <= 1.0
    assert record["samples"].shape == (rings.EVAL_SAMPLES, 2)
    assert np.isfinite(record["samples"]).all()


STABILISED = ["wgan_gp", "wgan_clip", "ns_r1", "ns_instance_noise", "ns_spectral_norm"]


@pytest.mark.parametrize("name", STABILISED)
def test_every_stabiliser_trains_on_two_dimensional_data(name):
    """AdversarialModel's penalties, clipping and noise all accept (B, 2) batches."""
    record = rings.train_once(rings.SETTINGS[name], seed=1, steps=10, batch_size=32)
    assert np.isfinite(record["samples"]).all()


# --- Command line ------------------------------------------------------------------------------


def test_dirac_command_prints_json(capsys, tmp_path):
    plot = tmp_path / "dirac.png"
    argv = ["dirac", "--steps", "100", "--settings", "minimax_r1", "--mode", "alternating"]
    argv += ["--plot", str(plot)]
    assert lab_cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    result = summary["results"]["minimax_r1"]["alternating"]
    assert result["final_distance"] < result["initial_distance"] == pytest.approx(math.sqrt(2))
    assert plot.stat().st_size > 0


def test_rings_command_writes_the_report(capsys, tmp_path):
    argv = ["rings", "--settings", "hinge", "--steps", "20", "--seeds", "4", "--out", str(tmp_path)]
    assert lab_cli.main(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)["rings"]
    assert row["setting"] == "hinge" and row["seeds"] == [4] and row["steps"] == [20]
    report = (tmp_path / "convergence.md").read_text()
    assert "| hinge |" in report and "| minimax_r1 | simultaneous |" in report
    for name in ("hinge", "dirac"):
        assert (tmp_path / "images" / "convergence" / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["dirac", "--steps", "0"],
        ["dirac", "--lr", "-1"],
        ["dirac", "--mode", "sideways"],
        ["dirac", "--settings", "nope"],
        ["rings", "--seeds", "a,b"],
        ["rings", "--settings", "minimax,nope"],
    ],
)
def test_bad_values_are_one_error_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lab_cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_command_line_defaults_match_the_library():
    defaults = lab_cli.DIRAC_DEFAULTS
    assert defaults["steps"] == dirac.STEPS and defaults["lr"] == dirac.LEARNING_RATE
    assert defaults["gamma"] == dirac.GAMMA and defaults["gp_weight"] == dirac.GP_WEIGHT
    assert defaults["start"] == dirac.START
    assert lab_cli.DIRAC_SETTINGS == tuple(dirac.SETTINGS)
