"""training.metrics against closed forms, hand computations and their defining properties."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from training import metrics


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


# --- RunningMoments -------------------------------------------------------------------------------


def test_streaming_moments_equal_numpy_on_the_full_set():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3001, 7)) @ rng.normal(size=(7, 7)) + 1e4  # large mean: no cancellation
    moments = metrics.RunningMoments()
    for start, stop in [(0, 1), (1, 500), (500, 2048), (2048, 3001)]:  # uneven batches
        moments.update(x[start:stop])
    assert moments.count == 3001
    np.testing.assert_allclose(moments.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.covariance, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_streaming_moments_merge_and_float32_batches():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(1000, 5)).astype(np.float32)
    a = metrics.RunningMoments().update(x[:300])
    b = metrics.RunningMoments.from_batches([x[300:650], x[650:]])
    a.merge(b)
    full = x.astype(np.float64)
    np.testing.assert_allclose(a.mean, full.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(a.covariance, np.cov(full, rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError):
        a.update(np.zeros((2, 4)))
    with pytest.raises(ValueError):
        metrics.RunningMoments().update(x[:1]).covariance


# --- FID ------------------------------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 32)) @ rng.normal(size=(32, 32))
    m = metrics.RunningMoments().update(x)
    assert abs(metrics.frechet_distance(m.mean, m.covariance, m.mean, m.covariance)) < 1e-6


def test_fid_of_diagonal_gaussians_equals_the_hand_computed_value():
    # Diagonal covariances commute: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(s1) - sqrt(s2))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    # ||mu1 - mu2||^2 = 1 + 0 + 4 = 5;  (1-2)^2 + (2-1)^2 + (3-3)^2 = 2
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(7.0,
                                                                                        abs=1e-12)
    # 1-d: (mu1 - mu2)^2 + (sigma1 - sigma2)^2
    assert metrics.frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9.0 + 1.0)


def closed_form_fid(mu1, s1, mu2, s2):
    """Independent route: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_fid_of_non_commuting_covariances_matches_the_symmetric_closed_form():
    rng = np.random.default_rng(3)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=3.0)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        closed_form_fid(mu1, s1, mu2, s2), rel=1e-9)


def test_fid_estimated_from_samples_approaches_the_true_parameters():
    rng = np.random.default_rng(4)
    d, n = 4, 200_000
    mu1, mu2 = np.zeros(d), np.array([0.5, -0.5, 0.0, 1.0])
    s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=2.0)
    truth = closed_form_fid(mu1, s1, mu2, s2)
    a, b = metrics.RunningMoments(), metrics.RunningMoments()
    for _ in range(10):  # streamed in 10 batches of 20,000
        a.update(rng.multivariate_normal(mu1, s1, size=n // 10))
        b.update(rng.multivariate_normal(mu2, s2, size=n // 10))
    estimate = metrics.frechet_distance(a.mean, a.covariance, b.mean, b.covariance)
    assert estimate == pytest.approx(truth, rel=0.02, abs=0.01)


def test_fid_singular_covariances_and_non_psd_input():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 20))  # 10 samples in 20-d: rank-9 covariance
    m = metrics.RunningMoments().update(x)
    value = metrics.frechet_distance(m.mean, m.covariance, m.mean, m.covariance)
    assert np.isfinite(value) and abs(value) < 1e-3
    with pytest.raises(ValueError, match="imaginary"):
        metrics.frechet_distance([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2))
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# --- KID ------------------------------------------------------------------------------------------


def expected_cubic_kernel(a, ca, b, cb):
    """E (X·Y/d + 1)^3 for independent X ~ N(a, ca), Y ~ N(b, cb), from Gaussian moments.

    With u = X·Y:  E u = a·b;  E u^2 = Tr(Ma Mb) with M = C + m mᵀ (second moments, since
    E u^2 = Σ_ij E[X_i X_j] E[Y_i Y_j]);  E u^3 = Σ_ijk Ta_ijk Tb_ijk with the third moment
    T_ijk = m_i m_j m_k + m_i C_jk + m_j C_ik + m_k C_ij (Isserlis). Then expand the cube.
    """
    d = len(a)

    def third(m, c):
        return (np.einsum("i,j,k->ijk", m, m, m) + np.einsum("i,jk->ijk", m, c)
                + np.einsum("j,ik->ijk", m, c) + np.einsum("k,ij->ijk", m, c))

    e1 = a @ b
    e2 = np.trace((ca + np.outer(a, a)) @ (cb + np.outer(b, b)))
    e3 = np.sum(third(a, ca) * third(b, cb))
    return e3 / d**3 + 3 * e2 / d**2 + 3 * e1 / d + 1


def closed_form_cubic_mmd2(a, ca, b, cb):
    return (expected_cubic_kernel(a, ca, a, ca) + expected_cubic_kernel(b, cb, b, cb)
            - 2 * expected_cubic_kernel(a, ca, b, cb))


def test_expected_cubic_kernel_formula_against_monte_carlo():
    # The closed form itself, checked on 10^6 independent pairs (relative error ~ 0.3%).
    rng = np.random.default_rng(6)
    a, b = np.array([0.5, -1.0, 0.2]), np.array([1.0, 0.3, 0.0])
    ca, cb = random_spd(rng, 3), random_spd(rng, 3, 0.5)
    x = rng.multivariate_normal(a, ca, size=1_000_000)
    y = rng.multivariate_normal(b, cb, size=1_000_000)
    monte_carlo = np.mean(((x * y).sum(axis=1) / 3 + 1) ** 3)
    assert monte_carlo == pytest.approx(expected_cubic_kernel(a, ca, b, cb), rel=0.02)


def test_unbiased_mmd2_has_the_closed_form_expectation():
    rng = np.random.default_rng(7)
    d = 3
    a, b = np.zeros(d), np.array([0.6, 0.0, -0.3])
    ca, cb = np.eye(d), np.diag([1.5, 0.7, 1.0])
    truth = closed_form_cubic_mmd2(a, ca, b, cb)
    estimates = np.array([
        metrics.polynomial_mmd2_unbiased(rng.multivariate_normal(a, ca, size=100),
                                         rng.multivariate_normal(b, cb, size=100))
        for _ in range(400)
    ])  # independent draws: their mean has standard error std / sqrt(400)
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 4 * standard_error
    assert truth > 10 * standard_error  # the test has power: the value is far from 0


def test_kid_of_two_gaussians_is_close_to_the_closed_form():
    rng = np.random.default_rng(8)
    d = 4
    a, b = np.zeros(d), np.full(d, 0.4)
    ca, cb = random_spd(rng, d), random_spd(rng, d, 1.3)
    truth = closed_form_cubic_mmd2(a, ca, b, cb)
    x = rng.multivariate_normal(a, ca, size=5000)
    y = rng.multivariate_normal(b, cb, size=5000)
    mean, std = metrics.kernel_inception_distance(x, y, num_subsets=20, subset_size=1000, seed=0)
    assert std > 0
    # The sampling error of 5,000 + 5,000 samples against the truth is ~5% here (seeds 8..13
    # gave -3%..+9%: the cubic kernel is heavy-tailed); the subset average is within 1% of the
    # U-statistic on all samples. Exact unbiasedness is tested on independent draws above.
    assert mean == pytest.approx(truth, rel=0.15)


def test_kid_is_unbiased_for_equal_distributions_and_can_be_negative():
    rng = np.random.default_rng(9)
    estimates = np.array([
        metrics.kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)),
                                          num_subsets=1, subset_size=200, seed=i)[0]
        for i in range(300)
    ])
    standard_error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean()) < 4 * standard_error
    assert (estimates < 0).any() and (estimates > 0).any()


def test_kid_subsets_are_seeded_and_capped():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(300, 5)), rng.normal(0.5, 1.0, size=(250, 5))
    first = metrics.kernel_inception_distance(x, y, num_subsets=5, seed=3)  # subset 1000 -> 250
    assert first == metrics.kernel_inception_distance(x, y, num_subsets=5, seed=3)
    estimates = metrics.kid_subset_estimates(x, y, num_subsets=5, seed=3)
    assert first == (pytest.approx(estimates.mean()), pytest.approx(estimates.std()))


# --- IS -------------------------------------------------------------------------------------------


def test_inception_score_of_uniform_one_hot_predictions_is_the_number_of_classes():
    for classes in (2, 10, 1000):
        p = np.tile(np.eye(classes), (10, 1))  # each of the 10 splits holds every class once
        mean, std = metrics.inception_score(p, splits=10)
        assert mean == pytest.approx(classes, rel=1e-12) and std == pytest.approx(0, abs=1e-9)


def test_inception_score_of_identical_rows_is_one():
    p = np.tile(np.array([[0.1, 0.2, 0.7]]), (500, 1))
    mean, std = metrics.inception_score(p)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_the_definition_on_random_softmaxes():
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.full(5, 0.3), size=1003).astype(np.float32)
    mean, std = metrics.inception_score(p, splits=4)
    p = p.astype(np.float64)
    scores = []
    bounds = [0, 250, 501, 752, 1003]  # i * N // splits, as Salimans et al.'s code
    for part in (p[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])):
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    assert (mean, std) == (pytest.approx(np.mean(scores)), pytest.approx(np.std(scores)))
    assert 1 <= mean <= 5
    with pytest.raises(ValueError):
        metrics.inception_score(np.full((20, 3), 0.5))  # rows do not sum to 1


# --- Precision and recall -------------------------------------------------------------------------


def test_precision_recall_of_identical_sets_is_one():
    x = np.random.default_rng(12).normal(size=(500, 16))
    assert metrics.precision_recall(x, x.copy()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    rng = np.random.default_rng(13)
    real = rng.normal(size=(400, 8))
    fake = rng.normal(size=(300, 8)) + 100.0
    assert metrics.precision_recall(real, fake) == (0.0, 0.0)


def test_mode_collapse_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(14)
    real = rng.normal(size=(2000, 2))
    fake = rng.normal(0.0, 0.1, size=(2000, 2))  # all inside the real mass, covering little
    precision, recall = metrics.precision_recall(real, fake)
    assert precision > 0.95 and recall < 0.2


def test_radii_and_blocked_distances_equal_brute_force():
    rng = np.random.default_rng(15)
    real, fake = rng.normal(size=(300, 5)), rng.normal(0.3, 1.2, size=(250, 5))
    d = cdist(real, real)
    np.testing.assert_allclose(metrics.manifold_radii(real, k=3), np.sort(d, axis=1)[:, 3],
                               rtol=1e-9)
    radii_real = np.sort(d, axis=1)[:, 3]
    radii_fake = np.sort(cdist(fake, fake), axis=1)[:, 3]
    precision = np.mean((cdist(fake, real) <= radii_real[None, :]).any(axis=1))
    recall = np.mean((cdist(real, fake) <= radii_fake[None, :]).any(axis=1))
    tiny_blocks = metrics.precision_recall(real, fake, block_bytes=8 * 300 * 7)  # 7 rows a block
    assert tiny_blocks == (pytest.approx(precision), pytest.approx(recall))
    assert metrics.precision_recall(real, fake) == tiny_blocks
    with pytest.raises(ValueError):
        metrics.manifold_radii(real[:3], k=3)
