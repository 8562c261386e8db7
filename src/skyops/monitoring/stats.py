"""The statistics of a drift check: two-sample tests, PSI, multiple-testing control, MMD with a permutation test.

ks_test     two-sample Kolmogorov-Smirnov (scipy.stats.ks_2samp): sensitive to any change of a numeric
            distribution (location, spread, shape), no binning to choose. With ties (a count, an image
            size) its p-values are conservative: fewer alarms, never more.
chi2_test   chi-square test of homogeneity of a categorical feature (scipy.stats.chi2_contingency) on the
            2 x K table of baseline and window counts. Categories expected fewer than 5 times are pooled
            into one, so the chi-square approximation holds; a category only the window has still counts.
psi         population stability index, an effect size: sum (w - b) ln(w / b) over bins, shares floored at
            1e-4. Numeric features are binned at the baseline's deciles, categorical ones by category.
            Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a major shift.
holm        Holm's step-down adjustment: controls the family-wise error rate under any dependence.
mmd_test    squared maximum mean discrepancy (biased V-statistic) with a Gaussian kernel whose bandwidth is
            the median pairwise distance of the pooled sample; its p-value from seeded permutations of the
            pooled sample, (1 + #{permuted >= observed}) / (1 + permutations), exact at any sample size.
witness     where the window has more mass than the reference: the MMD witness function at each window
            point, mean k(x, window) - mean k(x, reference). The higher, the more the point stands for the drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PSI_FLOOR = 1e-4
MIN_EXPECTED = 5.0  # chi-square: categories expected fewer times than this are pooled
PERMUTATION_CHUNK = 128  # permutations evaluated per matrix product


def ks_test(baseline: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """(D statistic, p-value) of the two-sample Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    result = ks_2samp(baseline, window)
    return float(result.statistic), float(result.pvalue)


def chi2_test(baseline: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """(chi-square statistic, p-value) of homogeneity of two samples of labels (module docstring)."""
    from scipy.stats import chi2_contingency

    categories = sorted(set(baseline.tolist()) | set(window.tolist()))
    table = np.array([[np.sum(sample == c) for c in categories] for sample in (baseline, window)], dtype=np.float64)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    rare = expected.min(axis=0) < MIN_EXPECTED
    if rare.any():
        table = (
            np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)]) if (~rare).any() else table[:, rare].sum(axis=1, keepdims=True)
        )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0  # one category on both sides: nothing to compare
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def psi(baseline: np.ndarray, window: np.ndarray, *, categorical: bool) -> float:
    """Population stability index of the window against the baseline (module docstring)."""
    if categorical:
        categories = sorted(set(baseline.tolist()) | set(window.tolist()))
        b = np.array([np.mean(baseline == c) for c in categories])
        w = np.array([np.mean(window == c) for c in categories])
    else:
        edges = np.unique(np.quantile(baseline, np.linspace(0, 1, 11)[1:-1]))
        # Bins (e[i-1], e[i]]: a value equal to an edge stays below it, so a baseline of one repeated value
        # (no boxes at all) fills the bin at or below it and anything larger is counted above.
        b = np.bincount(np.searchsorted(edges, baseline, side="left"), minlength=len(edges) + 1) / len(baseline)
        w = np.bincount(np.searchsorted(edges, window, side="left"), minlength=len(edges) + 1) / len(window)
    b, w = np.maximum(b, PSI_FLOOR), np.maximum(w, PSI_FLOOR)
    return float(np.sum((w - b) * np.log(w / b)))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values: reject those <= alpha and the family-wise error rate is at most alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control): controls the false discovery rate."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    return p if len(p) == 0 else np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


@dataclass(frozen=True)
class MmdResult:
    statistic: float  # MMD^2, biased V-statistic
    p_value: float
    bandwidth: float  # the kernel's length scale (median pairwise distance)
    witness: np.ndarray  # (n_window,) the witness function at each window point


def mmd_test(reference: np.ndarray, window: np.ndarray, *, permutations: int, seed: int) -> MmdResult:
    """MMD^2 between two samples of vectors (R, k) and (W, k), with its permutation p-value (module docstring)."""
    pooled = np.vstack([reference, window]).astype(np.float64)
    n_ref, n = len(reference), len(pooled)
    squares = (pooled * pooled).sum(axis=1)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2 * pooled @ pooled.T, 0.0)  # squared, (n, n)
    upper = distances[np.triu_indices(n, 1)]
    median = float(np.median(upper[upper > 0])) if (upper > 0).any() else 1.0
    kernel = np.exp(-distances / (2 * median))
    # The permutations' products in float32: 2-3x faster than float64 on this CPU, a relative error ~1e-6.
    kernel32 = kernel.astype(np.float32)
    window_weight, reference_weight = np.float32(1.0 / (n - n_ref)), np.float32(-1.0 / n_ref)

    def statistics(labels: np.ndarray) -> np.ndarray:
        """MMD^2 of each row of `labels` (P, n): True where a point is taken as the window's."""
        weights = np.where(labels, window_weight, reference_weight)
        return (weights @ kernel32 * weights).sum(axis=1, dtype=np.float64)

    labels = np.arange(n) >= n_ref
    observed = float(statistics(labels[None, :])[0])  # rounded as the permuted ones are
    at_least = observed - 1e-5 * abs(observed)  # a permutation within float32 rounding of it counts as reaching it
    rng = np.random.default_rng(seed)
    exceed, done = 0, 0
    while done < permutations:
        size = min(PERMUTATION_CHUNK, permutations - done)
        shuffled = rng.permuted(np.tile(labels, (size, 1)), axis=1)  # each row shuffled on its own
        exceed += int((statistics(shuffled) >= at_least).sum())
        done += size
    witness = kernel[n_ref:, n_ref:].mean(axis=1) - kernel[n_ref:, :n_ref].mean(axis=1)
    return MmdResult(observed, (1 + exceed) / (1 + permutations), float(np.sqrt(median)), witness)


def feature_witness(baseline: np.ndarray, window: np.ndarray, *, categorical: bool, width: float = 0.05) -> np.ndarray:
    """A one-feature witness at each window value: how much more the window holds near it than the baseline.

    Numeric values are first mapped through the baseline's distribution function (so the kernel's `width`
    means the same for every feature); categorical ones give their category's share in the window minus
    its share in the baseline.
    """
    if categorical:
        shares = {c: np.mean(window == c) - np.mean(baseline == c) for c in set(window.tolist())}
        return np.array([shares[v] for v in window.tolist()], dtype=np.float64)
    ordered = np.sort(baseline)
    u_base = (np.arange(len(ordered)) + 0.5) / len(ordered)
    u_win = np.searchsorted(ordered, window, side="right") / len(ordered)

    def density(points: np.ndarray) -> np.ndarray:
        return np.exp(-((u_win[:, None] - points[None, :]) ** 2) / (2 * width**2)).mean(axis=1)

    return density(u_win) - density(u_base)
