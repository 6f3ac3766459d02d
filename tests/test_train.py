"""End-to-end training on the planted-cluster dataset: quality, every model, guards, determinism."""
import json
import math
import os

import numpy as np
import pytest

from gnnrec_jax import configs
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import GnnrecError, TrainingError
from gnnrec_jax.evaluation.metrics import metrics_numpy
from gnnrec_jax.experiment import prepare
from gnnrec_jax.training.fit import fit

FAST = dict(embed_dim=16, batch_size=64, epochs=25, lr=0.05, eval_every=5, patience=5,
            topk=(5, 10), select_metric="ndcg@10", eval_batch_size=32)


def _config(model="lightgcn", **kw):
  return configs.get_config("test").replace(model=model, **{**FAST, **kw})


def _run(cfg, ds, workdir, **kw):
  return fit(prepare(cfg, ds), workdir, progress=False, **kw).metrics


def _popularity_ndcg(exp):
  """NDCG@10 of ranking by train popularity, with the same exclusions as the trainer's test pass."""
  ds, sp = exp.dataset, exp.split
  pop = np.bincount(sp.train.item, minlength=ds.num_items).astype(np.float64)
  scores = np.tile(pop, (ds.num_users, 1))
  truth = [set() for _ in range(ds.num_users)]
  seen = [set() for _ in range(ds.num_users)]
  for u, i in zip(sp.test.user, sp.test.item):
    truth[u].add(int(i))
  for part in (sp.train, sp.valid):
    for u, i in zip(part.user, part.item):
      seen[u].add(int(i))
  return metrics_numpy(scores, truth, seen, ks=(10,))["ndcg@10"]


def test_lightgcn_learns_the_planted_clusters(tmp_path):
  ds = make_synthetic()
  cfg = _config()
  exp = prepare(cfg, ds)
  result = _run(cfg, ds, str(tmp_path))
  pop = _popularity_ndcg(exp)
  # Users favour their own group 9:1, so a model that learns the graph beats popularity by far.
  assert result["ndcg@10"] > pop + 0.15, (result["ndcg@10"], pop)
  for name in ("config.json", "run.json", "history.jsonl", "metrics.json", "best.ckpt",
               "latest.ckpt", "curves.png"):
    assert os.path.exists(tmp_path / name), name
  rows = [json.loads(l) for l in open(tmp_path / "history.jsonl")]
  assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
  assert rows[-1]["loss"] < rows[0]["loss"]
  assert json.load(open(tmp_path / "metrics.json"))["ndcg@10"] == result["ndcg@10"]


@pytest.mark.parametrize("model", ["softmax_gnn", "ngcf", "gat", "mf", "ease"])
def test_every_model_trains_and_evaluates(tmp_path, model):
  ds = make_synthetic()
  cfg = _config(model, epochs=3, num_layers=0 if model == "mf" else 2, ease_l2=10.0)
  result = _run(cfg, ds, str(tmp_path))
  for k in (5, 10):
    for name in ("recall", "ndcg", "precision", "hit", "mrr", "coverage"):
      assert 0.0 <= result[f"{name}@{k}"] <= 1.0
  assert result["ndcg@10"] > 0.0


def test_same_seed_same_metrics(tmp_path):
  ds = make_synthetic(seed=3)
  cfg = _config(epochs=4)
  a = _run(cfg, ds, str(tmp_path / "a"))
  b = _run(cfg, ds, str(tmp_path / "b"))
  assert a == b
  c = _run(cfg.replace(seed=7), ds, str(tmp_path / "c"))
  assert c != a


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
  ds = make_synthetic()
  # Huge initial vectors overflow float32 dot products: the very first loss is NaN.
  cfg = _config(init_std=1e30, epochs=2)
  with pytest.raises(TrainingError, match=r"non-finite loss .* epoch 1, step 0"):
    _run(cfg, ds, str(tmp_path))


def test_workdir_of_another_config_is_refused(tmp_path):
  ds = make_synthetic()
  _run(_config(epochs=1), ds, str(tmp_path))
  with pytest.raises(GnnrecError, match="lr"):
    _run(_config(epochs=1, lr=0.01), ds, str(tmp_path))
  with pytest.raises(GnnrecError, match="--resume"):
    _run(_config(epochs=1), ds, str(tmp_path))


def test_resume_in_process_matches_uninterrupted(tmp_path):
  ds = make_synthetic(seed=1)
  full = _run(_config(epochs=6), ds, str(tmp_path / "full"))
  part = str(tmp_path / "part")
  _run(_config(epochs=6).replace(epochs=3), ds, part)
  resumed = _run(_config(epochs=6), ds, part, resume=True)
  assert resumed["ndcg@10"] == full["ndcg@10"]
  assert resumed["recall@10"] == full["recall@10"]
  assert math.isfinite(resumed["mrr@10"])


def test_cold_item_split_reports_warm_and_cold_blocks(tmp_path):
  ds = make_synthetic(num_users=80, num_items=60, seed=2)
  cfg = _config(epochs=2, split="cold_item", cold_fraction=0.25)
  exp = prepare(cfg, ds)
  cold = set(np.asarray(exp.split.cold_items).tolist())
  assert cold and not cold & set(exp.split.train.item.tolist())
  result = fit(exp, str(tmp_path), progress=False).metrics
  for block in ("warm", "cold"):
    assert 0.0 <= result[f"{block}/ndcg@10"] <= 1.0
    assert result[f"{block}/num_pairs"] > 0
  # The cold block ranks only the withheld items: its coverage counts over them alone.
  assert result["cold/coverage@10"] <= 1.0 and result["cold/num_users"] > 0
  assert json.load(open(tmp_path / "metrics.json"))["cold/ndcg@10"] == result["cold/ndcg@10"]


def test_fields_at_their_default_stay_out_of_the_fingerprint():
  from gnnrec_jax.config import Config
  from gnnrec_jax.experiment import learning_config
  assert learning_config(Config()) == {}
  assert learning_config(Config(lr=0.5, epochs=7, patience=2)) == {"lr": 0.5}  # runtime fields
  # Under a decaying schedule the horizon (epochs) is learning-relevant.
  assert learning_config(Config(lr_schedule="cosine", epochs=7)) == {
      "lr_schedule": "cosine", "epochs": 7}
