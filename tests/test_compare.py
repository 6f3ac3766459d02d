"""Paired comparison statistics against scipy.stats on hand-made per-user tables."""
import numpy as np
import pytest
from scipy import stats

from gnnrec_jax.evaluation import compare

# Ten users, two models: B beats A on most users, ties on two, loses on one.
A = np.array([0.10, 0.20, 0.00, 0.50, 0.30, 0.25, 0.40, 0.00, 0.60, 0.15])
B = np.array([0.20, 0.35, 0.00, 0.55, 0.30, 0.45, 0.35, 0.10, 0.80, 0.30])


def test_paired_tests_match_scipy():
  p_t, p_w = compare.paired_tests(A, B)
  assert p_t == pytest.approx(stats.ttest_rel(B, A).pvalue, rel=1e-12)
  d = B - A
  assert p_w == pytest.approx(stats.wilcoxon(d[d != 0]).pvalue, rel=1e-12)
  # By hand: d = .1 .15 0 .05 0 .2 -.05 .1 .2 .15; mean .09, sd of d
  dd = np.array([.1, .15, 0, .05, 0, .2, -.05, .1, .2, .15])
  t = dd.mean() / (dd.std(ddof=1) / np.sqrt(10))
  assert p_t == pytest.approx(2 * stats.t.sf(abs(t), df=9), rel=1e-9)


def test_compare_paired_means_counts_and_holm():
  res = compare.compare_paired({"m@1": A, "m@2": A[::-1]}, {"m@1": B, "m@2": B[::-1]},
                               ["m@1", "m@2"], num_resamples=2000)
  r = res["m@1"]
  assert r["mean_a"] == pytest.approx(A.mean()) and r["mean_b"] == pytest.approx(B.mean())
  assert r["diff"] == pytest.approx(0.09)
  assert (r["better"], r["worse"], r["tied"], r["n"]) == (7, 1, 2, 10)
  # Same users in reverse order: the same p-values, so Holm doubles each (m = 2).
  assert res["m@2"]["p_t"] == pytest.approx(r["p_t"])
  assert r["p_t_holm"] == pytest.approx(min(1, 2 * r["p_t"]))
  assert r["p_wilcoxon_holm"] == pytest.approx(min(1, 2 * r["p_wilcoxon"]))
  assert r["ci"][0] < 0.09 < r["ci"][1]


def test_bootstrap_interval_agrees_with_scipy_bootstrap():
  d = B - A
  ours = compare.percentile_interval(
      compare.bootstrap_means(d[:, None], num_resamples=40000, seed=1))[0]
  ref = stats.bootstrap((d,), np.mean, n_resamples=40000, method="percentile",
                        confidence_level=0.95, rng=np.random.default_rng(2)).confidence_interval
  # Different random streams: agreement to Monte-Carlo error (a few thousandths here).
  assert ours[0] == pytest.approx(ref.low, abs=4e-3)
  assert ours[1] == pytest.approx(ref.high, abs=4e-3)


def test_bootstrap_means_by_hand_for_two_users():
  # Two users, d = (0, 1): a resample's mean is 0, .5 or 1 with probability 1/4, 1/2, 1/4.
  means = compare.bootstrap_means(np.array([[0.0], [1.0]]), num_resamples=20000, seed=0)[:, 0]
  values, counts = np.unique(means, return_counts=True)
  assert values.tolist() == [0.0, 0.5, 1.0]
  assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_identical_tables_give_zero_difference_interval_and_p_one():
  res = compare.compare_paired({"m@1": A}, {"m@1": A.copy()}, ["m@1"])["m@1"]
  assert res["diff"] == 0.0 and res["ci"] == [0.0, 0.0]
  assert res["p_t"] == res["p_wilcoxon"] == res["p_t_holm"] == 1.0
  assert (res["better"], res["worse"], res["tied"]) == (0, 0, 10)


def test_constant_nonzero_difference():
  a = np.arange(10) / 4  # exact binary fractions: every difference is exactly 0.5
  p_t, p_w = compare.paired_tests(a, a + 0.5)
  assert p_t == 0.0  # zero variance, non-zero mean: infinite t (scipy: NaN)
  assert p_w == pytest.approx(stats.wilcoxon(np.full(10, 0.5)).pvalue)


def test_holm_by_hand():
  # Sorted .01 .02 .04 .30 -> 4*.01=.04, 3*.02=.06, 2*.04=.08, 1*.3=.3; monotone; input order kept.
  adj = compare.holm([0.04, 0.01, 0.30, 0.02])
  assert adj.tolist() == pytest.approx([0.08, 0.04, 0.30, 0.06])
  assert compare.holm([0.5, 0.6]).tolist() == pytest.approx([1.0, 1.0])
  # Monotonicity: a later raw p-value can never get a smaller adjusted one.
  assert compare.holm([0.001, 0.011, 0.012]).tolist() == pytest.approx([0.003, 0.022, 0.022])
  assert np.isnan(compare.holm([np.nan, 0.1])[0])


def test_holm_across_comparisons():
  r1 = compare.compare_paired({"m@1": A}, {"m@1": B}, ["m@1"])
  r2 = compare.compare_paired({"m@1": A}, {"m@1": A + 0.01 * np.arange(10)}, ["m@1"])
  compare.holm_across([r1, r2])
  ps = [r1["m@1"]["p_t"], r2["m@1"]["p_t"]]
  assert [r1["m@1"]["p_t_holm"], r2["m@1"]["p_t_holm"]] == pytest.approx(compare.holm(ps))


def test_arms_are_seeded_stable_and_balanced():
  users = np.arange(2000)
  a1, a2 = compare.arms(users, 0), compare.arms(users, 0)
  assert np.array_equal(a1, a2)
  assert not np.array_equal(a1, compare.arms(users, 1))
  assert 900 < a1.sum() < 1100
  assert np.array_equal(compare.arms(users[::-1], 0), a1[::-1])  # a user's arm is its own


def test_replay_ab_by_hand():
  users = np.arange(8)
  in_b = compare.arms(users, 3)
  hit_a = np.array([1, 0, 1, 0, 1, 0, 1, 0], float)
  hit_b = np.ones(8)
  prec_a, prec_b = hit_a / 2, hit_b / 2
  out = compare.replay_ab(users, {"hit@2": hit_a, "precision@2": prec_a},
                          {"hit@2": hit_b, "precision@2": prec_b}, k=2, seed=3)
  assert out["simulation"] is True
  arm_a = out["arms"]["A"]
  assert arm_a["users"] == int((~in_b).sum())
  assert arm_a["hit_rate"] == pytest.approx(hit_a[~in_b].mean())
  assert arm_a["ctr"] == pytest.approx(prec_a[~in_b].mean())
  assert arm_a["clicks"] == int(hit_a[~in_b].sum())  # one click per hit (precision * K)
  assert out["arms"]["B"]["hit_rate"] == 1.0
  assert out["hit_rate_diff"] == pytest.approx(1.0 - hit_a[~in_b].mean())
  half = compare.Z95 * prec_a[~in_b].std(ddof=1) / np.sqrt((~in_b).sum())
  assert arm_a["ctr_ci"] == pytest.approx([arm_a["ctr"] - half, arm_a["ctr"] + half])
  assert arm_a["hit_rate_ci"] == pytest.approx(compare.wilson_interval(arm_a["hit_rate"],
                                                                       arm_a["users"]))
  assert out["arms"]["B"]["hit_rate_ci"][1] <= 1.0  # Wilson stays inside [0, 1]


def test_wilson_interval_by_hand():
  # p = 0.5, n = 100: centre 0.5, half-width z sqrt(.25/100 + z^2/40000) / (1 + z^2/100).
  z = compare.Z95
  half = z * np.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
  assert compare.wilson_interval(0.5, 100) == pytest.approx((0.5 - half, 0.5 + half))
  lo, hi = compare.wilson_interval(1.0, 10)  # all successes: the interval ends at 1, not above
  assert hi == pytest.approx(1.0) and lo == pytest.approx(10 / (10 + z * z))


def test_split_difference_names_the_part():
  base = {"dataset": "ml-100k", "num_users": 3, "num_items": 4,
          "train": {"size": 10, "sha256": "a"}, "valid": {"size": 2, "sha256": "b"},
          "test": {"size": 2, "sha256": "c"}}
  assert compare.split_difference(base, dict(base)) is None
  assert "dataset differs (ml-100k vs lastfm)" in compare.split_difference(
      base, {**base, "dataset": "lastfm"})
  assert compare.split_difference(base, {**base, "test": {"size": 3, "sha256": "c"}}) == \
      "test sizes differ (2 vs 3 interactions)"
  assert compare.split_difference(base, {**base, "train": {"size": 10, "sha256": "z"}}) == \
      "train content differs (same size 10, other user-item pairs)"
