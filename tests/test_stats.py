"""Percentiles and bootstrap intervals."""

from __future__ import annotations

import pytest

from structbench.metrics.scores import score_rate
from structbench.stats import (
    EMPTY_DISTRIBUTION,
    bootstrap_ci,
    derive_seed,
    describe,
    percentile,
    rate_ci,
    wilson_ci,
)


def test_describe_known_values() -> None:
    d = describe([100.0, 100.0, 200.0])
    assert d.n == 3
    assert d.mean == pytest.approx(400 / 3)
    assert d.median == 100.0
    assert d.std == pytest.approx((20000 / 9) ** 0.5)
    assert d.p90 == pytest.approx(180.0)  # linear: 100 + 0.8 * 100
    assert d.p99 == pytest.approx(198.0)
    assert describe([]) == EMPTY_DISTRIBUTION
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 50) is None


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    vals = [1.0] * 80 + [0.0] * 20
    a = bootstrap_ci(vals, 1000, seed=7)
    assert a == bootstrap_ci(vals, 1000, seed=7)
    assert a is not None and a[0] < 0.8 < a[1]
    # Normal approximation: 0.8 +- 1.96 * sqrt(0.16 / 100) = [0.72, 0.88].
    assert a[0] == pytest.approx(0.72, abs=0.03) and a[1] == pytest.approx(0.88, abs=0.03)
    assert bootstrap_ci([], 1000) is None
    assert bootstrap_ci(vals, 0) is None
    assert bootstrap_ci([1.0] * 5, 100) == (1.0, 1.0)


def test_bootstrap_fractional_values_match_the_binary_shortcut_in_spread() -> None:
    frac = [0.5, 1.0, 0.0, 0.75] * 25
    lo, hi = bootstrap_ci(frac, 2000, seed=1) or (0.0, 0.0)
    mean = sum(frac) / len(frac)
    assert lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 * (0.13672 / 100) ** 0.5, rel=0.1)


def test_derive_seed_is_stable() -> None:
    assert derive_seed(0, "cell", "schema_valid") == derive_seed(0, "cell", "schema_valid")
    assert derive_seed(0, "cell", "a") != derive_seed(0, "cell", "b")
    assert derive_seed(1, "x") != derive_seed(0, "x")


def test_wilson_matches_the_closed_form() -> None:
    # 8 of 10 at 95 %: the textbook Wilson interval is [0.4902, 0.9433].
    low, high = wilson_ci(8, 10) or (0.0, 0.0)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_ci(0, 0) is None
    with pytest.raises(ValueError):
        wilson_ci(3, 2)


@pytest.mark.parametrize("ones", [0, 2])
def test_rate_interval_does_not_collapse_at_0_or_1(ones: int) -> None:
    values = [1.0] * ones + [0.0] * (2 - ones)
    # The bootstrap of two identical 0/1 values is a single point ...
    b = bootstrap_ci(values, seed=1)
    assert b is not None and b[0] == b[1]
    # ... the Wilson interval of 0/2 or 2/2 is wide and stays inside [0, 1].
    low, high = rate_ci(values) or (0.0, 0.0)
    assert 0.0 <= low < high <= 1.0 and high - low > 0.5
    assert (low == 0.0) if ones == 0 else (high == 1.0)


def test_rate_ci_keeps_the_bootstrap_for_fractional_means() -> None:
    values = [0.25, 0.5, 0.75, 1.0]
    assert rate_ci(values, n_resamples=500, seed=3) == bootstrap_ci(values, n_resamples=500, seed=3)
    assert rate_ci(values, n_resamples=0) is None


def test_validity_rate_reports_wilson_at_n2() -> None:
    r = score_rate([1.0, 1.0], 0, "schema_valid", bootstrap=1000, seed=0)
    assert r.rate == 1.0 and r.ci_high == 1.0
    assert r.ci_low is not None and r.ci_low < 0.5
