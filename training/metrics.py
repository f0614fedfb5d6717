"""Sample-quality metrics on feature vectors: FID, KID, Inception Score, precision and recall.

Pure numpy/scipy, float64 accumulation, independent of any network: ``training.
feature_networks`` turns images into the features and class probabilities these functions take.

* ``RunningMoments``: mean and covariance of activations streamed in batches.
* ``frechet_distance``: FID (Heusel et al. 2017).
* ``kernel_inception_distance``: KID (Bińkowski et al. 2018), the unbiased MMD² with a cubic
  polynomial kernel, averaged over random subsets.
* ``inception_score``: IS (Salimans et al. 2016).
* ``precision_recall``: improved precision and recall (Kynkäänniemi et al. 2019).

A metric's value depends on the feature network and on the number of samples (FID and IS are
biased estimators); compare only values computed under the same protocol.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.special

__all__ = [
    "RunningMoments",
    "frechet_distance",
    "polynomial_kernel",
    "polynomial_mmd2_unbiased",
    "kid_subset_estimates",
    "kernel_inception_distance",
    "inception_score",
    "manifold_radii",
    "precision_recall",
]


def _as_2d_float64(x, name="x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {x.shape}")
    return x


# --- Streaming statistics -------------------------------------------------------------------------


class RunningMoments:
    """Mean and covariance of a stream of activation batches, in float64.

    Keeps the count ``n``, the sum ``s = Σ (x - c)`` and the sum of outer products
    ``S = Σ (x - c)(x - c)ᵀ`` around a shift ``c`` (the first batch's mean; shifting leaves the
    covariance unchanged and avoids the cancellation of ``S/n - mean meanᵀ`` when the mean is
    large against the spread). Then

        mean = c + s / n,      covariance = (S - s sᵀ / n) / (n - 1)

    (the unbiased covariance, as ``np.cov`` and the reference FID code). Memory is O(D²),
    whatever the number of samples.
    """

    def __init__(self, dim: int | None = None):
        self.count = 0
        self.dim = dim
        self._shift = None
        self._sum = None
        self._outer = None

    def update(self, batch) -> "RunningMoments":
        """Add a batch ``[B, D]`` (or ``[B, ...]``, flattened) of activations."""
        x = np.asarray(batch, dtype=np.float64)
        x = x.reshape(len(x), -1) if x.ndim != 2 else x
        if len(x) == 0:
            return self
        if self._shift is None:
            if self.dim is not None and x.shape[1] != self.dim:
                raise ValueError(f"expected {self.dim} features, got {x.shape[1]}")
            self.dim = x.shape[1]
            self._shift = x.mean(axis=0)
            self._sum = np.zeros(self.dim)
            self._outer = np.zeros((self.dim, self.dim))
        elif x.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim} features, got {x.shape[1]}")
        centred = x - self._shift
        self.count += len(x)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        return self

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        """Add the samples summarised by ``other`` (e.g. from another worker)."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.dim, self.count = other.dim, other.count
            self._shift, self._sum, self._outer = (other._shift.copy(), other._sum.copy(),
                                                   other._outer.copy())
            return self
        if other.dim != self.dim:
            raise ValueError(f"cannot merge {other.dim}-d moments into {self.dim}-d ones")
        # Re-express other's sums around our shift: x - c = (x - c') + d with d = c' - c.
        d = other._shift - self._shift
        self._outer += (other._outer + np.outer(other._sum, d) + np.outer(d, other._sum)
                        + other.count * np.outer(d, d))
        self._sum += other._sum + other.count * d
        self.count += other.count
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise ValueError("no samples yet")
        return self._shift + self._sum / self.count

    @property
    def covariance(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, have {self.count}")
        cov = (self._outer - np.outer(self._sum, self._sum) / self.count) / (self.count - 1)
        return (cov + cov.T) / 2  # exactly symmetric

    @classmethod
    def from_batches(cls, batches) -> "RunningMoments":
        moments = cls()
        for batch in batches:
            moments.update(batch)
        return moments


# --- FID ------------------------------------------------------------------------------------------


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6,
                     imaginary_tolerance: float = 1e-3) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2) (FID).

        d² = ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})

    M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter, "GANs Trained by a Two
    Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (the Fréchet /
    2-Wasserstein distance of Dowson & Landau 1982). As in the authors' TTUR code: the matrix
    square root is ``scipy.linalg.sqrtm``; if it is not finite (singular product) ``eps * I`` is
    added to both covariances and it is recomputed; a complex result whose diagonal has an
    imaginary part above ``imaginary_tolerance`` raises ``ValueError``, a smaller one (round-off)
    is dropped.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different lengths: {mu1.shape} and {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"covariances {sigma1.shape} and {sigma2.shape} do not match the "
                         f"{len(mu1)}-d means")
    diff = mu1 - mu2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrtm's "singular matrix" notice
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular product of covariances; adding {eps} to their diagonals",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(len(mu1)) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=imaginary_tolerance):
            raise ValueError(f"FID: the matrix square root has a large imaginary component "
                             f"({np.max(np.abs(covmean.imag)):.3g}); are both covariances "
                             "symmetric positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# --- KID ------------------------------------------------------------------------------------------


def polynomial_kernel(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0):
    """``k(a, b) = (gamma a·b + coef0)^degree`` for all rows of ``x`` and ``y``; gamma = 1/D."""
    x, y = _as_2d_float64(x, "x"), _as_2d_float64(y, "y")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    base = x @ y.T
    base *= gamma
    base += coef0
    if isinstance(degree, (int, np.integer)) and 1 <= degree <= 8:
        kernel = base.copy()
        for _ in range(degree - 1):  # repeated products: ~25x faster than np.power here
            kernel *= base
        return kernel
    return base ** degree


def polynomial_mmd2_unbiased(x, y, degree: int = 3, gamma: float | None = None,
                             coef0: float = 1.0) -> float:
    """Unbiased estimate of MMD² between the distributions of the rows of ``x`` and ``y``.

        MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m-1)) + Σ_{i≠j} k(y_i, y_j) / (n(n-1))
                 - 2 Σ_{i,j} k(x_i, y_j) / (mn)

    (Gretton et al. 2012, eq. 3 with the cross term over all pairs, the ``unbiased`` estimator of
    Bińkowski et al.'s code). Its expectation is exactly MMD², so it can be negative.
    """
    x, y = _as_2d_float64(x, "x"), _as_2d_float64(y, "y")
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD² needs at least 2 samples per set, got {m} and {n}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                 + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.sum() / (m * n))


def kid_subset_estimates(x, y, num_subsets: int = 100, subset_size: int = 1000,
                         seed: int | None = 0, **kernel_args) -> np.ndarray:
    """``num_subsets`` unbiased MMD² estimates, each on ``subset_size`` rows of ``x`` and of ``y``
    drawn without replacement (independently per subset). ``subset_size`` is capped at the
    smaller set's size."""
    x, y = _as_2d_float64(x, "x"), _as_2d_float64(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    subset_size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        xs = x[rng.choice(len(x), subset_size, replace=False)]
        ys = y[rng.choice(len(y), subset_size, replace=False)]
        estimates[i] = polynomial_mmd2_unbiased(xs, ys, **kernel_args)
    return estimates


def kernel_inception_distance(x, y, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int | None = 0, **kernel_args) -> tuple[float, float]:
    """Kernel Inception Distance: ``(mean, std)`` of unbiased MMD² estimates over subsets.

        KID = E[ MMD²_u(X_s, Y_s) ],   k(a, b) = (a·b / d + 1)³

    M. Bińkowski, D. J. Sutherland, M. Arbel, A. Gretton, "Demystifying MMD GANs", ICLR 2018.
    Each of ``num_subsets`` subsets takes ``subset_size`` rows of ``x`` and of ``y`` without
    replacement (capped at the smaller set's size); the defaults 100 x 1000 are torch-fidelity's.

    The second value is what the reference implementations report (Bińkowski et al.'s
    ``compute_scores.py``, torch-fidelity's ``kernel_inception_distance_std``): the standard
    deviation (ddof=0) of the per-subset estimates, i.e. the spread of a single 1000-sample
    estimate, *not* the standard error of the mean (the subsets overlap, so that is between
    ``std / sqrt(num_subsets)`` and ``std``). Both values are in raw units; papers often quote
    KID x 10³.
    """
    estimates = kid_subset_estimates(x, y, num_subsets, subset_size, seed, **kernel_args)
    return float(estimates.mean()), float(estimates.std())


# --- IS -------------------------------------------------------------------------------------------


def inception_score(probabilities, splits: int = 10) -> tuple[float, float]:
    """Inception Score: ``(mean, std)`` over ``splits`` consecutive equal parts.

        IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x) within each part

    T. Salimans, I. Goodfellow, W. Zaremba, V. Cheung, A. Radford, X. Chen, "Improved Techniques
    for Training GANs", NeurIPS 2016; split as in their ``inception_score.py`` (part ``i`` is
    rows ``i N // splits`` to ``(i + 1) N // splits``; std with ddof=0). ``0 log 0 = 0``. It lies
    in [1, number of classes]: 1 when every row is the same distribution, C for confident
    predictions spread evenly over C classes.
    """
    p = _as_2d_float64(probabilities, "probabilities")
    n = len(p)
    if splits < 1 or n < splits:
        raise ValueError(f"need at least {splits} rows for {splits} splits, got {n}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probabilities must be non-negative rows summing to 1 (a softmax)")
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.rel_entr(part, marginal).sum(axis=1)  # Σ p log(p / p(y)), 0 log 0 = 0
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# --- Precision and recall -------------------------------------------------------------------------


def _squared_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = (a * a).sum(axis=1)[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def _row_block(rows_other: int, block_bytes: int) -> int:
    return max(1, block_bytes // (8 * max(rows_other, 1)))


def manifold_radii(features, k: int = 3, block_bytes: int = 64 << 20) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (Kynkäänniemi et al.'s k-NN radius).

    Pairwise distances are computed a block of rows at a time (``block_bytes`` per block), so a
    10,000 x 10,000 problem never holds the full matrix.
    """
    x = _as_2d_float64(features, "features")
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} samples, got {k}")
    sq = (x * x).sum(axis=1)
    radii = np.empty(len(x))
    step = _row_block(len(x), block_bytes)
    for start in range(0, len(x), step):
        d = _squared_distances(x[start:start + step], x, sq)
        rows = np.arange(len(d))
        d[rows, start + rows] = 0.0  # the point itself is the 0th neighbour
        radii[start:start + step] = np.partition(d, k, axis=1)[:, k]
    return np.sqrt(radii)


def _coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray,
              block_bytes: int) -> float:
    """Fraction of ``queries`` inside at least one ball ``(manifold_i, radii_i)``."""
    sq = (manifold * manifold).sum(axis=1)
    radii_sq = radii ** 2
    inside = 0
    step = _row_block(len(manifold), block_bytes)
    for start in range(0, len(queries), step):
        d = _squared_distances(queries[start:start + step], manifold, sq)
        inside += int((d <= radii_sq[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real_features, fake_features, k: int = 3,
                     block_bytes: int = 64 << 20) -> tuple[float, float]:
    """Improved precision and recall: ``(precision, recall)``, both in [0, 1].

        precision = (1/M) Σ_j 1[ fake_j ∈ manifold(real) ]
        recall    = (1/N) Σ_i 1[ real_i ∈ manifold(fake) ]
        manifold(S) = ∪_{s ∈ S} B(s, ||s - NN_k(s)||)

    where ``NN_k(s)`` is the k-th nearest neighbour of ``s`` in ``S`` other than itself.
    T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen, T. Aila, "Improved Precision and Recall
    Metric for Assessing Generative Models", NeurIPS 2019 (k = 3 as in the paper). Precision
    measures how many samples look real, recall how much of the real data the samples cover.
    Distances are computed in blocks (``block_bytes`` each), never as the full N x M matrix.
    """
    real = _as_2d_float64(real_features, "real_features")
    fake = _as_2d_float64(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} and {fake.shape[1]}")
    real_radii = manifold_radii(real, k, block_bytes)
    fake_radii = manifold_radii(fake, k, block_bytes)
    precision = _coverage(real, real_radii, fake, block_bytes)
    recall = _coverage(fake, fake_radii, real, block_bytes)
    return precision, recall
