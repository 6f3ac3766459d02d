"""Side by side with RecBole 1.2.1: train-epoch and full-evaluation time, same settings, same load.

  python benchmarks/vs_recbole.py [--dataset ml-100k] [--model LightGCN] [--epochs 3] \
      [--rounds 3] [--threads 1] [--backend auto]
  python benchmarks/vs_recbole.py --dataset gowalla --epochs 1 --rounds 1

Settings of both: embedding 64, 3 layers, BPR with one uniform negative, batch 2048, Adam 1e-3,
L2 1e-4, full ranking with train items masked, Recall/NDCG@20 (benchmarks/peers/README.md).
RecBole runs its own trainer in its venv (`benchmarks/peers/recbole_runner.py`, a subprocess;
`bash benchmarks/peers/setup_recbole_venv.sh` makes the venv once); ours runs in this process
through `gnnrec_jax.training.fit` (`make_train_step`, `epoch_batches`, `evaluate_params`).

The two take turns, `--rounds` times: RecBole (`--epochs` epochs, an evaluation after each,
then the test evaluation), then ours (the same epochs and evaluations), so that both see the
same load. RecBole's epoch time is its runner's `train_epoch_s` (mean of the epochs after the
first, which carries its warm-up); ours excludes compilation, done once before the first round
and reported apart. Ratios (RecBole / ours) are given for the min and the median over rounds.
Splits are each library's own 80/10/10 random split on ml-100k (same sizes, not the same
draws; timing only) and LightGCN's fixed split on Gowalla. Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECBOLE_PY = os.path.join(HERE, "_peers", "recbole-venv", "bin", "python")
OUR_MODEL = {"LightGCN": "lightgcn", "NGCF": "ngcf", "BPR": "mf"}


def run_recbole(args) -> dict:
  cmd = [RECBOLE_PY, os.path.join(HERE, "peers", "recbole_runner.py"), "--model", args.model,
         "--dataset", args.dataset, "--epochs", str(args.epochs), "--threads", str(args.threads)]
  if args.dataset == "gowalla":
    cmd += ["--data-dir", args.gowalla_dir]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  if out.returncode:
    raise RuntimeError(f"recbole_runner failed ({out.returncode}):\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def run_ours(runner, epochs: int) -> dict:
  """`epochs` epochs with an evaluation after each, then one more evaluation (RecBole's test)."""
  train_s, eval_s, result = [], [], {}
  for _ in range(epochs):
    secs, _ = runner.train_steps(0)
    train_s.append(secs)
    secs, result = runner.evaluate()
    eval_s.append(secs)
  eval_s.append(runner.evaluate()[0])
  # Like the runner's train_epoch_s: the mean, here over all epochs (ours are compiled already).
  return {"train_epoch_s": float(np.mean(train_s)), "eval_s": statistics.median(eval_s),
          "train_epoch_s_all": train_s, "eval_s_all": eval_s,
          "metrics": {k: result[k] for k in ("recall@20", "ndcg@20") if k in result}}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "gowalla"))
  parser.add_argument("--model", default="LightGCN", choices=tuple(OUR_MODEL))
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--threads", type=int, default=1,
                      help="torch threads of RecBole (see benchmarks/peers/README.md: 2 threads "
                      "under load are 10x slower)")
  parser.add_argument("--backend", default="auto", help="our propagation backend")
  parser.add_argument("--gowalla-dir", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "gowalla"))
  args = parser.parse_args(argv)
  if not os.path.exists(RECBOLE_PY):
    print(f"no RecBole venv at {RECBOLE_PY}; run bash benchmarks/peers/setup_recbole_venv.sh",
          file=sys.stderr)
    return 2

  sys.path.insert(0, HERE)
  import jax
  from bench_train import Runner, load, make_config

  from gnnrec_jax.graph import kernels
  from gnnrec_jax.graph.propagate import csr_threads, resolve_backend

  cfg = make_config(args.dataset, args.backend, OUR_MODEL[args.model])
  ds = load(args.dataset, args.gowalla_dir if args.dataset == "gowalla" else None)
  runner = Runner(cfg, ds)
  t0 = time.perf_counter()
  runner.train_steps(2)
  runner.evaluate()
  warmup_s = time.perf_counter() - t0

  rounds = []
  for k in range(args.rounds):
    rb = run_recbole(args)
    load_mid = os.getloadavg()
    ours = run_ours(runner, args.epochs)
    rounds.append({"recbole": rb, "ours": ours, "loadavg_recbole": rb.get("loadavg_start"),
                   "loadavg_ours": load_mid})
    print(f"round {k + 1}: recbole epoch {rb['train_epoch_s']:.2f} s, eval {rb['eval_s']:.3f} s "
          f"(load {rb['loadavg_start'][0]}); ours epoch {ours['train_epoch_s']:.2f} s, eval "
          f"{ours['eval_s']:.3f} s (load {load_mid[0]:.1f})", file=sys.stderr)

  def stats(who, key):
    vals = [r[who][key] for r in rounds]
    return min(vals), statistics.median(vals)

  summary = {}
  print(f"{args.dataset} {args.model}: {args.rounds} rounds x {args.epochs} epochs, "
        f"RecBole {args.threads} torch thread(s), ours backend "
        f"{resolve_backend(args.backend, ds.num_users + ds.num_items)}")
  print(f"{'':14} {'RecBole min':>12} {'median':>8} {'ours min':>9} {'median':>8} "
        f"{'ratio min':>10} {'ratio med':>10}")
  for key, label in (("train_epoch_s", "train epoch s"), ("eval_s", "full eval s")):
    rb_min, rb_med = stats("recbole", key)
    our_min, our_med = stats("ours", key)
    summary[key] = {"recbole_min": rb_min, "recbole_median": rb_med, "ours_min": our_min,
                    "ours_median": our_med, "ratio_min": rb_min / our_min,
                    "ratio_median": rb_med / our_med}
    print(f"{label:14} {rb_min:12.3f} {rb_med:8.3f} {our_min:9.3f} {our_med:8.3f} "
          f"{rb_min / our_min:10.1f} {rb_med / our_med:10.1f}")
  loads = [r["loadavg_ours"][0] for r in rounds] + [r["loadavg_recbole"][0] for r in rounds]
  print(f"load average (1 min) during the rounds: {min(loads):.1f} - {max(loads):.1f}")
  print(json.dumps({"benchmark": "vs_recbole", "dataset": args.dataset, "model": args.model,
                    "epochs": args.epochs, "rounds": args.rounds,
                    "recbole_threads": args.threads, "backend": args.backend,
                    "backend_resolved": resolve_backend(args.backend,
                                                        ds.num_users + ds.num_items),
                    "csr_threads": csr_threads(), "native_kernels": kernels.available(),
                    "device": str(jax.devices()[0]),
                    "jax_version": jax.__version__, "warmup_s": warmup_s,
                    "summary": summary, "rounds_detail": rounds}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
