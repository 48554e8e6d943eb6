"""The paired statistics of stage=compare, against references and where the truth is known.

References: McNemar's exact test against statsmodels' `mcnemar(exact=True)` and scipy's
`binomtest`; Holm against statsmodels' `multipletests`; the paired bootstrap against a
plain-numpy loop drawing the same resamples. Truth: a planted gain is found, a run against
itself is not, and the false-positive rate under the null stays at alpha, clustered
questions included (where a naive test is shown to fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from medalign.compare import stats as S


def _correlated_pair(rng: np.random.Generator, n: int, p_base: float, gain: float):
    """Two runs' 0/1 scores on the same n questions: shared difficulty, run better by
    `gain` on average."""
    difficulty = rng.random(n)
    base = (difficulty < p_base).astype(float)
    run = (difficulty < p_base + gain).astype(float)
    flip = rng.random(n) < 0.15  # some independent noise on both
    base[flip] = (rng.random(flip.sum()) < p_base).astype(float)
    flip = rng.random(n) < 0.15
    run[flip] = (rng.random(flip.sum()) < p_base + gain).astype(float)
    return base, run


def test_mcnemar_matches_statsmodels_and_scipy() -> None:
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    from scipy.stats import binomtest

    rng = np.random.default_rng(3)
    for n, gain in ((220, 0.05), (50, 0.2), (1000, 0.0)):
        base, run = _correlated_pair(rng, n, 0.5, gain)
        b, c, p = S.mcnemar(base, run)
        table = [
            [np.sum((base == 1) & (run == 1)), b],
            [c, np.sum((base == 0) & (run == 0))],
        ]
        assert b == int(table[0][1]) and c == int(table[1][0])
        assert p == pytest.approx(sm.mcnemar(table, exact=True).pvalue, rel=1e-12)
        assert p == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = [0.01, 0.04, 0.03, 0.2, 0.005, 0.5]
    expected = multitest.multipletests(p, method="holm")[1]
    assert S.holm(p) == pytest.approx(list(expected))


def test_paired_bootstrap_equals_a_plain_numpy_loop_with_the_same_draws() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(300)
    run = base + rng.normal(0.02, 0.1, 300)
    row = S.paired_test(base, run, resamples=2000, seed=7)
    low, high = row["ci_low"], row["ci_high"]
    draws = np.random.default_rng(7)  # the same generator, one resample at a time
    d = run - base
    means = [d[draws.integers(0, len(d), size=len(d))].mean() for _ in range(2000)]
    ref_low, ref_high = np.quantile(means, [0.025, 0.975])
    assert low == pytest.approx(ref_low, abs=1e-5)
    assert high == pytest.approx(ref_high, abs=1e-5)


def test_a_planted_ten_point_gain_on_1000_questions_is_found() -> None:
    base, run = _correlated_pair(np.random.default_rng(11), 1000, 0.45, 0.10)
    row = S.paired_test(base, run, resamples=4000, seed=0)
    assert row["test"] == "mcnemar_exact"
    assert row["p"] < 1e-4
    assert 0 < row["ci_low"] < row["diff"] < row["ci_high"]
    assert row["ci_low"] < 0.10 < row["ci_high"] + 0.02
    assert row["c"] > row["b"]
    assert 0 < row["mde"] < row["diff"]  # the gain is larger than what the n could miss


def test_a_run_against_itself_is_no_difference() -> None:
    base, _ = _correlated_pair(np.random.default_rng(1), 500, 0.5, 0.0)
    row = S.paired_test(base, base.copy(), resamples=1000)
    assert (row["diff"], row["p"], row["b"], row["c"]) == (0.0, 1.0, 0, 0)
    assert row["ci_low"] == row["ci_high"] == 0.0
    assert row["mde"] > 0  # falls back to the unpaired variance, never a fake 0
    cont = S.paired_test(base * 0.3 + 0.1, base * 0.3 + 0.1, resamples=500)
    assert cont["test"] == "sign_flip" and cont["p"] == 1.0


def test_false_positive_rate_under_the_null_is_at_most_seven_percent() -> None:
    rng = np.random.default_rng(2024)
    rejections = 0
    for _ in range(200):
        base, run = _correlated_pair(rng, 300, 0.5, 0.0)
        rejections += S.paired_test(base, run, resamples=0)["p"] < 0.05
    assert rejections / 200 <= 0.07


def _clustered_null(rng: np.random.Generator, reports: int = 40, per_report: int = 12):
    """Questions on one report share each run's report-level skill: under the null the two
    runs are equally good on average, but differ report by report."""
    clusters = np.repeat(np.arange(reports), per_report)
    skill_a = rng.normal(0, 2.0, reports)[clusters]
    skill_b = rng.normal(0, 2.0, reports)[clusters]
    base = (rng.random(len(clusters)) < 1 / (1 + np.exp(-skill_a))).astype(float)
    run = (rng.random(len(clusters)) < 1 / (1 + np.exp(-skill_b))).astype(float)
    return base, run, [f"r{c}" for c in clusters]


def test_clustered_questions_keep_the_false_positive_rate_where_a_naive_test_fails() -> None:
    rng = np.random.default_rng(5)
    clustered = naive = 0
    for _ in range(200):
        base, run, clusters = _clustered_null(rng)
        row = S.paired_test(base, run, clusters=clusters, resamples=1000, seed=1)
        assert row["test"] == "sign_flip_clustered" and row["clusters"] == 40
        clustered += row["p"] < 0.05
        naive += S.paired_test(base, run, resamples=0)["p"] < 0.05  # McNemar, as if independent
    assert clustered / 200 <= 0.07
    assert naive / 200 >= 0.25  # what ignoring the reports would have claimed


def test_wilson_interval_is_right_at_the_edges() -> None:
    low, high = S.wilson(np.zeros(4))
    assert low == 0.0 and 0.4 < high < 0.5  # 0/4: [0, 0.49], not [0, 0]
    low, high = S.wilson(np.ones(10))
    assert 0.7 < low < 0.75 and high == pytest.approx(1.0)


def test_results_ignore_row_order_when_values_are_sorted_by_id() -> None:
    rng = np.random.default_rng(9)
    base, run = rng.random(200), rng.random(200)
    one = S.paired_test(base, run, resamples=1000, seed=3)
    assert one == S.paired_test(base, run, resamples=1000, seed=3)  # seeded
    assert one["test"] == "sign_flip" and one["b"] is None


def test_rows_share_their_draws_and_match_one_at_a_time() -> None:
    rng = np.random.default_rng(4)
    base = rng.random((3, 150)).round()
    run = rng.random((3, 150)).round()
    together = S.paired_tests(base, run, resamples=800, seed=2)
    for k in range(3):
        alone = S.paired_test(base[k], run[k], resamples=800, seed=2)
        assert together[k]["p"] == alone["p"]
        assert together[k]["b"] == alone["b"]
        assert together[k]["diff"] == pytest.approx(alone["diff"])
