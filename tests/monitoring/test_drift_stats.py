"""The drift statistics against scipy and hand-computed values, and the MMD permutation test's calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from skyops.monitoring import stats


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    # m = 4: sorted p 0.01, 0.02, 0.03, 0.5 -> 4*0.01, max(0.04, 3*0.02), max(0.06, 2*0.03), min(1, 0.5)
    adjusted = stats.holm(np.array([0.03, 0.5, 0.01, 0.02]))
    np.testing.assert_allclose(adjusted, [0.06, 0.5, 0.04, 0.06])
    assert stats.holm(np.array([0.9, 0.8])).max() == 1.0


def test_benjamini_hochberg_is_scipys() -> None:
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5])
    np.testing.assert_allclose(stats.benjamini_hochberg(p), scipy_stats.false_discovery_control(p, method="bh"))


def test_ks_is_the_two_sample_test() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1, 200)
    expected = scipy_stats.ks_2samp(a, b)
    assert stats.ks_test(a, b) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))


def test_chi2_pools_categories_expected_fewer_than_five_times() -> None:
    base = np.array(["car"] * 60 + ["truck"] * 38 + ["bus"] * 2)
    window = np.array(["car"] * 30 + ["truck"] * 18 + ["boat"] * 2)
    statistic, p = stats.chi2_test(base, window)
    # bus and boat are each expected under 5 times: pooled into one column, then the 2 x 3 table's test.
    table = np.array([[60, 38, 2], [30, 18, 2]])
    expected = scipy_stats.chi2_contingency(table)
    assert (statistic, p) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))


def test_chi2_of_one_shared_category_finds_nothing() -> None:
    assert stats.chi2_test(np.array(["none"] * 10), np.array(["none"] * 7)) == (0.0, 1.0)


def test_chi2_sees_a_category_only_the_window_has() -> None:
    base = np.array(["car"] * 100 + ["truck"] * 100)
    window = np.array(["car"] * 50 + ["truck"] * 50 + ["container"] * 40)
    assert stats.chi2_test(base, window)[1] < 1e-6


def test_psi_by_hand() -> None:
    base = np.array(["a"] * 50 + ["b"] * 50)
    window = np.array(["a"] * 80 + ["b"] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert stats.psi(base, window, categorical=True) == pytest.approx(expected)
    same = np.random.default_rng(1).normal(size=1000)
    assert stats.psi(same, same, categorical=False) == pytest.approx(0.0)
    assert stats.psi(same, same + 2.0, categorical=False) > 1.0  # a shift of two standard deviations is a major one
    # A baseline of one repeated value (a model that found no boxes): a window that finds some moved.
    assert stats.psi(np.zeros(100), np.array([0.0] * 50 + [3.0] * 50), categorical=False) == pytest.approx(
        (0.5 - 1) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )


def test_mmd_finds_a_shift_and_its_p_value_is_at_its_floor() -> None:
    rng = np.random.default_rng(2)
    reference, window = rng.normal(size=(150, 8)), rng.normal(size=(100, 8)) + 0.6
    result = stats.mmd_test(reference, window, permutations=199, seed=0)
    assert result.p_value == pytest.approx(1 / 200)
    assert result.statistic > 0 and result.bandwidth > 0
    assert result.witness.shape == (100,)


def test_mmd_is_seeded() -> None:
    rng = np.random.default_rng(3)
    reference, window = rng.normal(size=(80, 4)), rng.normal(size=(60, 4))
    first = stats.mmd_test(reference, window, permutations=199, seed=5)
    assert stats.mmd_test(reference, window, permutations=199, seed=5).p_value == first.p_value


def test_mmd_permutation_p_values_are_calibrated_when_nothing_moved() -> None:
    """Under no drift a permutation p-value is uniform: at most ~alpha of the windows fall below alpha."""
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(120, 6))
    p_values = np.array([stats.mmd_test(reference, rng.normal(size=(60, 6)), permutations=99, seed=k).p_value for k in range(60)])
    assert (p_values <= 0.1).mean() <= 0.2  # expected 0.1; 0.2 is beyond three binomial standard deviations
    assert (p_values >= 0.5).mean() >= 0.3  # and it is not stuck near 0


def test_mmd_witness_points_at_the_drifted_points() -> None:
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(200, 4))
    window = np.vstack([rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 3.0])  # the second half moved
    witness = stats.mmd_test(reference, window, permutations=99, seed=0).witness
    assert witness[50:].mean() > witness[:50].mean()
    assert np.argsort(-witness)[:40].min() >= 50


def test_feature_witness_ranks_the_new_values_first() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=500)
    window = np.concatenate([rng.normal(size=50), rng.normal(size=50) + 4])
    witness = stats.feature_witness(base, window, categorical=False)
    # Values beyond the baseline's range map to its top: the baseline's own top percent stand near them, rightly.
    assert (np.argsort(-witness)[:50] >= 50).sum() >= 45
    labels = stats.feature_witness(np.array(["a"] * 90 + ["b"] * 10), np.array(["a"] * 50 + ["b"] * 50), categorical=True)
    assert labels[-1] == pytest.approx(0.4) and labels[0] == pytest.approx(-0.4)
