"""Paired comparison of two models' per-user metrics, and an offline replay A/B simulation.

Pure NumPy/scipy functions over per-user tables (`gnnrec_jax.evaluation.per_user`); the
`gnnrec-jax compare` command reads the files and prints what these return.

Paired tests (the same users rank under both models, so each user is their own control):
  d_u = m_B(u) - m_A(u) for every evaluated user u, n users.
  * mean difference  dbar = (1/n) sum_u d_u, with a percentile bootstrap 95% interval: users
    resampled with replacement (B resamples; one resampling shared by every metric), the 2.5th
    and 97.5th percentiles of the resampled means (Efron & Tibshirani 1993, ch. 13).
  * paired t-test    t = dbar / (s_d / sqrt(n)), two-sided (`scipy.stats.ttest_rel`).
  * Wilcoxon signed-rank test on the non-zero d_u, two-sided (`scipy.stats.wilcoxon`,
    zero_method="wilcox": tied users carry no sign information and are dropped).
  * Holm (1979) step-down correction across the metrics shown, for each test separately:
    with the m p-values sorted p_(1) <= ... <= p_(m), p~_(i) = max_{j <= i} min(1, (m-j+1) p_(j)).
  * users better / worse / tied: d_u > 0, < 0, == 0.
When every d_u is 0 (identical runs) the difference is 0, the interval [0, 0] and both p-values
1 (scipy returns NaN there: no variance, no signed ranks).

Replay A/B (the seed's online test, offline): users are split into two arms by a seeded hash of
their index; arm A is "served" model A's top-K list, arm B model B's, and each arm's held-out
test items act as the clicks. Hit rate = share of an arm's users with >= 1 click in the list
(Hit@K); CTR = clicks / impressions = mean Precision@K (K impressions per user). The hit rate
gets Wilson's score interval (a proportion of users; it stays inside [0, 1]), the CTR a normal
interval over the arm's users (clicks of one user are not independent, so users, not
impressions, are the sampling unit), the differences B - A an unpaired (Welch) interval and
p-value. It is a simulation of what an online test with half the users per
arm would see: unpaired, so its intervals are wider than the paired test's on the same data.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def bootstrap_means(diffs: np.ndarray, *, num_resamples: int = 10000, seed: int = 0,
                    chunk: int = 250) -> np.ndarray:
  """Means of `num_resamples` bootstrap resamples of the rows of `diffs`.

  Each resample draws n rows with replacement, expressed as multinomial counts (one [n] count
  vector per resample), so the means are a matrix product and memory stays O(chunk * n).

  Args:
    diffs: [n, m] per-user differences (m metrics share each resample).
    num_resamples: B.
    seed: the resampling seed.
    chunk: resamples per matrix product.

  Returns:
    [B, m] float64 resampled means.
  """
  d = np.asarray(diffs, np.float64)
  n = d.shape[0]
  rng = np.random.default_rng(seed)
  out = np.empty((num_resamples, d.shape[1]))
  p = np.full(n, 1.0 / n)
  for start in range(0, num_resamples, chunk):
    c = min(chunk, num_resamples - start)
    counts = rng.multinomial(n, p, size=c)  # [c, n]
    out[start:start + c] = counts @ d / n
  return out


def percentile_interval(resampled: np.ndarray, level: float = 0.95) -> np.ndarray:
  """[m, 2] percentile interval of each column of [B, m] resampled statistics."""
  q = (1 - level) / 2
  return np.stack([np.quantile(resampled, q, axis=0), np.quantile(resampled, 1 - q, axis=0)],
                  axis=1)


def holm(pvalues: Sequence[float]) -> np.ndarray:
  """Holm's step-down adjusted p-values (same order as the input; NaN stays NaN)."""
  p = np.asarray(pvalues, np.float64)
  out = np.full_like(p, np.nan)
  ok = np.flatnonzero(~np.isnan(p))
  m = len(ok)
  if not m:
    return out
  order = ok[np.argsort(p[ok], kind="stable")]
  adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
  out[order] = np.maximum.accumulate(adjusted)
  return out


def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
  """Two-sided p-values of the paired t-test and the Wilcoxon signed-rank test of b - a.

  1.0 for both when b == a for every user (scipy would return NaN); the t-test's p is 0 when
  every difference is the same non-zero number (infinite t).
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d = b - a
  nonzero = d[d != 0]
  if not len(nonzero):
    return 1.0, 1.0
  with warnings.catch_warnings():  # near-constant differences: scipy's precision note
    warnings.simplefilter("ignore", RuntimeWarning)
    p_t = 0.0 if np.all(d == d[0]) else float(stats.ttest_rel(b, a).pvalue)
    p_w = float(stats.wilcoxon(nonzero).pvalue)
  return p_t, p_w


def compare_paired(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                   metrics: Sequence[str], *, num_resamples: int = 10000, seed: int = 0,
                   level: float = 0.95) -> dict[str, dict]:
  """Every statistic of the module docstring for each metric, B against A.

  Args:
    a, b: per-user tables, {"metric@K": [n]} with rows aligned (the same user in each row).
    metrics: the keys to compare (the Holm family).
    num_resamples: bootstrap resamples.
    seed: bootstrap seed.
    level: interval level.

  Returns:
    {metric: {"mean_a", "mean_b", "diff", "ci": [lo, hi], "p_t", "p_wilcoxon", "p_t_holm",
     "p_wilcoxon_holm", "better", "worse", "tied", "n"}}.
  """
  if not metrics:
    return {}
  A = np.stack([np.asarray(a[m], np.float64) for m in metrics], axis=1)  # [n, m]
  B = np.stack([np.asarray(b[m], np.float64) for m in metrics], axis=1)
  if A.shape != B.shape:
    raise ValueError(f"per-user tables of different shapes {A.shape} and {B.shape}")
  D = B - A
  n = D.shape[0]
  if n and np.any(D != 0):
    ci = percentile_interval(bootstrap_means(D, num_resamples=num_resamples, seed=seed), level)
    # A column without any difference resamples to exactly 0; keep it exact.
    ci[~np.any(D != 0, axis=0)] = 0.0
  else:
    ci = np.zeros((len(metrics), 2))
  tests = [paired_tests(A[:, j], B[:, j]) if n else (math.nan, math.nan)
           for j in range(len(metrics))]
  p_t = np.array([t[0] for t in tests])
  p_w = np.array([t[1] for t in tests])
  p_t_holm, p_w_holm = holm(p_t), holm(p_w)
  out = {}
  for j, m in enumerate(metrics):
    d = D[:, j]
    out[m] = {"mean_a": float(A[:, j].mean()) if n else math.nan,
              "mean_b": float(B[:, j].mean()) if n else math.nan,
              "diff": float(d.mean()) if n else math.nan,
              "ci": [float(ci[j, 0]), float(ci[j, 1])],
              "p_t": float(p_t[j]), "p_wilcoxon": float(p_w[j]),
              "p_t_holm": float(p_t_holm[j]), "p_wilcoxon_holm": float(p_w_holm[j]),
              "better": int((d > 0).sum()), "worse": int((d < 0).sum()),
              "tied": int((d == 0).sum()), "n": int(n)}
  return out


def holm_across(results: Sequence[dict[str, dict]]) -> None:
  """Re-adjusts "p_t_holm" / "p_wilcoxon_holm" in place over several comparisons' metrics (one
  family: every test shown, e.g. B vs A and C vs A)."""
  cells = [(r, m) for r in results for m in r]
  for key in ("p_t", "p_wilcoxon"):
    adjusted = holm([r[m][key] for r, m in cells])
    for (r, m), p in zip(cells, adjusted):
      r[m][f"{key}_holm"] = float(p)


# ------------------------------------------------------------------------------ replay A/B

def arms(users: np.ndarray, seed: int) -> np.ndarray:
  """[n] bool, True for users in arm B: bit 0 of blake2b("seed:user"), stable across runs."""
  return np.array([hashlib.blake2b(f"{seed}:{int(u)}".encode(), digest_size=8).digest()[0] & 1
                   for u in np.asarray(users)], bool)


def wilson_interval(p: float, n: int) -> tuple[float, float]:
  """Wilson's 95% score interval of a proportion p observed on n trials (Wilson 1927)."""
  if n == 0:
    return math.nan, math.nan
  z2 = Z95 * Z95
  centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
  return centre - half, centre + half


def _mean_interval(x: np.ndarray) -> tuple[float, float, float]:
  n = len(x)
  m = float(x.mean()) if n else math.nan
  half = Z95 * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
  return m, m - half, m + half


def replay_ab(users: np.ndarray, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], *,
              k: int, seed: int = 0) -> dict:
  """The replay A/B simulation of the module docstring at cut-off `k`.

  Args:
    users: [n] user indices (rows of `a` and `b`).
    a, b: per-user tables with "hit@k" and "precision@k".
    k: the list length served.
    seed: the arm-assignment seed.

  Returns:
    {"k", "seed", "arms": {"A": {"users", "hit_rate", "hit_rate_ci", "ctr", "ctr_ci"}, "B": ...},
     "hit_rate_diff", "hit_rate_diff_ci", "hit_rate_p", "ctr_diff", "ctr_diff_ci", "ctr_p"}.
  """
  in_b = arms(users, seed)
  out: dict = {"k": k, "seed": seed, "simulation": True, "arms": {}}
  served = {"A": (a, ~in_b), "B": (b, in_b)}
  values = {}
  for arm, (table, rows) in served.items():
    hit = np.asarray(table[f"hit@{k}"], np.float64)[rows]
    ctr = np.asarray(table[f"precision@{k}"], np.float64)[rows]
    values[arm] = (hit, ctr)
    h = float(hit.mean()) if len(hit) else math.nan
    hlo, hhi = wilson_interval(h, len(hit))
    c, clo, chi = _mean_interval(ctr)
    out["arms"][arm] = {"users": int(rows.sum()), "impressions": int(rows.sum()) * k,
                        "clicks": int(round(float(ctr.sum()) * k)), "hit_rate": h,
                        "hit_rate_ci": [hlo, hhi], "ctr": c, "ctr_ci": [clo, chi]}
  for j, name in enumerate(("hit_rate", "ctr")):
    xa, xb = values["A"][j], values["B"][j]
    diff = float(xb.mean() - xa.mean()) if len(xa) and len(xb) else math.nan
    if len(xa) > 1 and len(xb) > 1:
      se = math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
      with warnings.catch_warnings():  # an arm without variance (every user hit): no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(xb, xa, equal_var=False).pvalue) if se > 0 else (
            1.0 if diff == 0 else 0.0)
    else:
      se, p = math.nan, math.nan
    out[f"{name}_diff"] = diff
    out[f"{name}_diff_ci"] = [diff - Z95 * se, diff + Z95 * se]
    out[f"{name}_p"] = p
  return out


# --------------------------------------------------------------------------------- splits

def split_difference(a: Mapping, b: Mapping) -> str | None:
  """Which part of two split fingerprints (`gnnrec_jax.experiment.split_fingerprint`) differs,
  in words; None when they are equal."""
  if a.get("dataset") != b.get("dataset"):
    return f"dataset differs ({a.get('dataset')} vs {b.get('dataset')})"
  for key, what in (("num_users", "users"), ("num_items", "items")):
    if a.get(key) != b.get(key):
      return f"catalogue differs ({a.get(key)} vs {b.get(key)} {what})"
  out = []
  for part in ("train", "valid", "test"):
    pa, pb = a.get(part) or {}, b.get(part) or {}
    if pa.get("size") != pb.get("size"):
      out.append(f"{part} sizes differ ({pa.get('size')} vs {pb.get('size')} interactions)")
    elif pa.get("sha256") != pb.get("sha256"):
      out.append(f"{part} content differs (same size {pa.get('size')}, other user-item pairs)")
  return "; ".join(out) or None
