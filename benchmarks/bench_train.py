"""LightGCN training and evaluation speed per propagation backend, through the library's own code.

  python benchmarks/bench_train.py [--datasets ml-100k gowalla] [--backends csr scipy dense segment] \
      [--steps 0] [--repeats 3] [--eval-repeats 2] [--model lightgcn] [--no-memory]

Setting: batch 2048, d = 64, 3 layers, BPR with one negative, L2 1e-4, Adam 1e-3 (RecBole's and
the LightGCN paper's; `make_config`). The step is `fit.make_train_step`, the batches
`fit.epoch_batches`, the evaluation `protocol.evaluate_split` (full ranking of every valid, or
test, user with train items masked, Recall/NDCG@20), i.e. exactly what `gnnrec-jax train` runs
(this file times the loop's core without its checkpoints and history).

Timing: per dataset the backends take turns (round 1: backend A, B, C; round 2: A, B, C; ...)
so that they share the machine's load; each turn times `--steps` train steps (0 = a whole
epoch) and one full evaluation. ms/step, the epoch time (ms/step x steps per epoch when
`--steps` is less than an epoch) and the evaluation time are reported as min and median over
rounds; compile times are reported apart. Peak memory: each (dataset, backend) also runs in a
child process for two steps and one evaluation, which reports `ru_maxrss` (and on GPU/TPU the
device's `peak_bytes_in_use`), so the figures do not mix backends.

"dense" is skipped when its [N, N] matrix would not fit (`propagate.DENSE_MAX_NODES`). Prints
a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

GOWALLA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                           "gowalla")  # ../shared/data beside the repository


def make_config(dataset: str, backend: str, model: str = "lightgcn"):
  """The peers' protocol (benchmarks/peers/README.md), spelled out: the per-model configs in
  gnnrec_jax/configs may be tuned to other recipes (e.g. sampled softmax), which would time a
  different step."""
  from gnnrec_jax.config import Config, validate
  return validate(Config(
      model=model, propagation=backend, batch_size=2048, embed_dim=64, num_layers=3,
      loss="bpr", num_negatives=1, l2=1e-4, optimizer="adam", lr=1e-3, lr_schedule="constant",
      topk=(20,), select_metric="ndcg@20",
      split="predefined" if dataset == "gowalla" else "random"))


def load(dataset: str, data_dir: str | None = None):
  from gnnrec_jax.data.registry import load_dataset
  if dataset == "gowalla":
    return load_dataset("gowalla", data_dir=data_dir or GOWALLA_DIR)
  return load_dataset(dataset, data_dir=data_dir)


class Runner:
  """One (dataset, backend): the experiment, a train state and the jitted functions."""

  def __init__(self, cfg, ds, exp=None):
    import jax

    from gnnrec_jax import experiment, models
    from gnnrec_jax.training import fit
    self.exp = exp or experiment.prepare(cfg, ds)
    self.exp.config = cfg
    self.cfg = cfg
    self.rec = models.create(self.exp)
    self.key = jax.random.key(cfg.seed)
    params = self.rec.init(self.key)
    self.inputs = self.rec.inputs
    self.steps_per_epoch = math.ceil(len(self.exp.split.train) / cfg.batch_size)
    tx = fit.create_optimizer(cfg, self.steps_per_epoch * cfg.epochs)
    self.state = fit.TrainState.create(apply_fn=None, params=params, tx=tx)
    self.step_fn = fit.make_train_step(self.rec)
    self.epoch = 0
    self.has_valid = len(self.exp.split.valid) > 0

  def train_steps(self, steps: int) -> tuple[float, int]:
    """Runs `steps` steps (0: one epoch) of a fresh epoch; returns (seconds, steps run)."""
    import jax

    from gnnrec_jax.training import fit
    self.epoch += 1
    batches = fit.epoch_batches(self.exp.split.train, batch_size=self.cfg.batch_size,
                                seed=self.cfg.seed, epoch=self.epoch)
    if steps:
      batches = itertools.islice(batches, steps)
    epoch_key = jax.random.fold_in(self.key, self.epoch)
    t0 = time.perf_counter()
    n = 0
    for n, batch in enumerate(batches, 1):
      self.state, m = self.step_fn(self.state, batch, self.inputs,
                                   jax.random.fold_in(epoch_key, n))
    jax.block_until_ready((self.state.params, m["loss"]))
    return time.perf_counter() - t0, n

  def evaluate(self) -> tuple[float, dict]:
    """One full-ranking evaluation (valid when the split has one, else test), timed."""
    from gnnrec_jax.evaluation.protocol import evaluate_split
    t0 = time.perf_counter()
    # The trainer's validation pass; without valid data (Gowalla) the test curve, train masked.
    res = evaluate_split(self.rec, self.state.params, "valid" if self.has_valid else "test",
                         blocks=False)
    return time.perf_counter() - t0, res


def peak_memory() -> dict:
  import jax
  out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out


def probe(args) -> int:
  """Child process: two steps and one evaluation (unless --eval-repeats 0) of one backend, then
  its peak memory."""
  cfg = make_config(args.probe[0], args.probe[1], args.model)
  r = Runner(cfg, load(args.probe[0], args.data_dir))
  r.train_steps(2)
  if args.eval_repeats:
    r.evaluate()
  print(json.dumps(peak_memory()))
  return 0


def bench(args) -> list[dict]:
  from gnnrec_jax import experiment
  from gnnrec_jax.graph.propagate import DENSE_MAX_NODES
  rows = []
  for name in args.datasets:
    ds = load(name, args.data_dir if len(args.datasets) == 1 else None)
    exp = None
    runners = {}
    for b in args.backends:
      cfg = make_config(name, b, args.model)
      if b == "dense" and ds.num_users + ds.num_items > DENSE_MAX_NODES:
        print(f"  {name}: dense skipped (N > {DENSE_MAX_NODES})", file=sys.stderr)
        continue
      exp = exp or experiment.prepare(cfg, ds)  # same split and graph for every backend
      r = Runner(cfg, ds, exp=experiment.Experiment(**{**exp.__dict__, "config": cfg}))
      t0 = time.perf_counter()
      r.train_steps(1)
      compile_s = time.perf_counter() - t0
      eval_compile_s = r.evaluate()[0] if args.eval_repeats else None
      runners[b] = (r, {"compile_s": compile_s, "eval_first_s": eval_compile_s, "step": [],
                        "eval": []})
    load_start = os.getloadavg()
    for k in range(args.repeats):
      for b, (r, t) in runners.items():
        secs, n = r.train_steps(args.steps)
        t["step"].append(secs / n)
        if k < args.eval_repeats:
          t["eval"].append(r.evaluate()[0])
    load_end = os.getloadavg()
    for b, (r, t) in runners.items():
      row = {"dataset": name, "model": args.model, "backend": b,
             "num_nodes": r.exp.num_users + r.exp.num_items,
             "num_edges": int(r.exp.graph.senders.shape[0]),
             "steps_per_epoch": r.steps_per_epoch,
             "timed_steps": args.steps or r.steps_per_epoch,
             "ms_per_step_min": 1e3 * min(t["step"]),
             "ms_per_step_median": 1e3 * statistics.median(t["step"]),
             "epoch_s_min": min(t["step"]) * r.steps_per_epoch,
             "epoch_s_median": statistics.median(t["step"]) * r.steps_per_epoch,
             "eval_s_min": min(t["eval"], default=None),
             "eval_s_median": statistics.median(t["eval"]) if t["eval"] else None,
             "compile_s": t["compile_s"], "eval_first_s": t["eval_first_s"],
             "loadavg_start": load_start, "loadavg_end": load_end}
      if args.memory:
        cmd = [sys.executable, os.path.abspath(__file__), "--probe", name, b,
               "--model", args.model, "--eval-repeats", str(args.eval_repeats)]
        cmd += ["--data-dir", args.data_dir] if args.data_dir else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row.update(json.loads(out.stdout.strip().splitlines()[-1]))
      rows.append(row)
    del runners
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", nargs="+", default=["ml-100k", "gowalla"])
  parser.add_argument("--backends", nargs="+", default=["csr", "scipy", "dense", "segment"])
  parser.add_argument("--model", default="lightgcn")
  parser.add_argument("--steps", type=int, default=0,
                      help="train steps per turn; 0 = one whole epoch")
  parser.add_argument("--repeats", type=int, default=3, help="rounds of turns")
  parser.add_argument("--eval-repeats", type=int, default=2,
                      help="evaluations timed (in the first rounds); 0 = no evaluation")
  parser.add_argument("--data-dir", default=None, help="dataset folder (one dataset only)")
  parser.add_argument("--no-memory", dest="memory", action="store_false",
                      help="skip the per-backend child processes that measure peak memory")
  parser.add_argument("--probe", nargs=2, metavar=("DATASET", "BACKEND"), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.probe:
    return probe(args)
  args.eval_repeats = max(0, min(args.eval_repeats, args.repeats))

  import jax

  from gnnrec_jax.graph import kernels
  from gnnrec_jax.graph.propagate import csr_threads

  rows = bench(args)
  print(f"{'dataset':8} {'backend':8} {'ms/step':>8} {'(median)':>9} {'steps':>6} "
        f"{'epoch s':>8} {'eval s':>7} {'compile s':>9} {'peak MB':>8} {'load':>5}")
  for r in rows:
    print(f"{r['dataset']:8} {r['backend']:8} {r['ms_per_step_min']:8.1f} "
          f"{r['ms_per_step_median']:9.1f} {r['steps_per_epoch']:6d} {r['epoch_s_min']:8.2f} "
          f"{r['eval_s_min'] if r['eval_s_min'] is not None else float('nan'):7.2f} "
          f"{r['compile_s']:9.2f} "
          f"{r.get('device_peak_mb', r.get('peak_rss_mb', float('nan'))):8.0f} "
          f"{r['loadavg_start'][0]:5.1f}")
  print(json.dumps({"benchmark": "train", "device": str(jax.devices()[0]),
                    "platform": jax.default_backend(), "jax_version": jax.__version__,
                    "cores": os.cpu_count(), "csr_threads": csr_threads(),
                    "native_kernels": kernels.available(),
                    "batch_size": 2048, "embed_dim": 64, "num_layers": 3, "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
