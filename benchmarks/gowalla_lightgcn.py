"""LightGCN on Gowalla with the LightGCN protocol, resumable across sessions.

  python benchmarks/gowalla_lightgcn.py [--workdir runs/gowalla_lightgcn] [--epochs 1000] \
      [--eval-every 20] [--lr 1e-3] [--batch-size 2048] [--backend auto]
  python benchmarks/gowalla_lightgcn.py --status      # the curve so far, without training
  # Recall@20 >= .18 in about 16 minutes on 2 CPU cores (benchmarks/RESULTS.md, run J):
  python benchmarks/gowalla_lightgcn.py --workdir runs/gow_j --epochs 28 --eval-every 1 \
      --lr 3e-3 --set loss=softmax num_negatives=64 softmax_temperature=0.2 l2=1e-2 \
      lr_schedule=cosine

Protocol (He et al., SIGIR 2020): LightGCN's own train/test files, no validation set, d = 64,
3 layers, BPR, L2 1e-4 on the batch's layer-0 embeddings, Adam; the test Recall/NDCG@20 is
recorded every `--eval-every` epochs as `test/*` rows of `history.jsonl` by the trainer (never
used to select anything). The paper reports Recall@20 0.1830 / NDCG@20 0.1554 after ~1000
epochs at lr 1e-3, batch 2048.

Rerunning the same command continues the run in `--workdir` from its last checkpoint (the
trainer's `--resume`: replayed batches and negatives, so the curve is the one an uninterrupted
run would draw); a different lr, batch or backend needs another workdir. Every new history row
is printed as it is written (epoch, loss, train seconds, test metrics when evaluated); a JSON
line with the curve comes last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

# The shared data folder sits beside the repository (see ../shared/data/README.md).
GOWALLA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                            "shared", "data", "gowalla"))


def read_history(path: str) -> list[dict]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a row being written
  return rows


K = 20  # the cut-off of the curve (Recall/NDCG@20 in the paper); --k changes it


def format_row(row: dict) -> str:
  text = f"epoch {row['epoch']:5d}  loss {row['loss']:.5f}  train {row['train_s']:7.1f} s"
  if f"test/recall@{K}" in row:
    text += (f"  test recall@{K} {row[f'test/recall@{K}']:.4f} "
             f"ndcg@{K} {row[f'test/ndcg@{K}']:.4f}  (eval {row.get('eval_s', 0.0):.1f} s)")
  return text


def follow(path: str, start: int, stop: threading.Event) -> None:
  """Prints history rows past `start` as the trainer appends them."""
  seen = start
  while True:
    done = stop.wait(5.0)  # one more pass after `stop`: the last rows are printed too
    rows = read_history(path)
    for row in rows[seen:]:
      print(format_row(row), flush=True)
    seen = max(seen, len(rows))
    if done:
      return


def summary(rows: list[dict]) -> dict:
  curve = [{"epoch": r["epoch"], f"recall@{K}": r[f"test/recall@{K}"],
            f"ndcg@{K}": r[f"test/ndcg@{K}"]} for r in rows if f"test/recall@{K}" in r]
  train_s = [r["train_s"] for r in rows]
  return {"epochs_done": rows[-1]["epoch"] if rows else 0,
          "train_s_total": sum(train_s),
          "eval_s_total": sum(r.get("eval_s", 0.0) for r in rows),
          "train_s_per_epoch_median": sorted(train_s)[len(train_s) // 2] if train_s else None,
          "curve": curve}


def main(argv=None) -> int:
  global K
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/gowalla_lightgcn")
  parser.add_argument("--data-dir", default=GOWALLA_DIR)
  parser.add_argument("--epochs", type=int, default=1000)
  parser.add_argument("--eval-every", type=int, default=20)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--batch-size", type=int, default=2048)
  parser.add_argument("--backend", default="auto")
  parser.add_argument("--k", type=int, default=K, help="the curve's cut-off")
  parser.add_argument("--status", action="store_true", help="print the curve so far and exit")
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                      help="config overrides on top of the paper's recipe, e.g. loss=softmax "
                      "num_negatives=64 softmax_temperature=0.2")
  args = parser.parse_args(argv)
  K = args.k
  history = os.path.join(args.workdir, "history.jsonl")

  if not args.status:
    from gnnrec_jax.config import Config, apply_overrides
    from gnnrec_jax.data.registry import load_dataset
    from gnnrec_jax.experiment import prepare
    from gnnrec_jax.graph.propagate import resolve_backend
    from gnnrec_jax.training.fit import fit

    # The paper's BPR recipe spelled out (configs/lightgcn.py may hold a tuned other one).
    cfg = Config(
        model="lightgcn", embed_dim=64, num_layers=3, loss="bpr", num_negatives=1, l2=1e-4,
        optimizer="adam", lr_schedule="constant",
        split="predefined", lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
        eval_every=args.eval_every, topk=(K,), select_metric=f"ndcg@{K}",
        propagation=args.backend, checkpoint_every=1)
    cfg = apply_overrides(cfg, args.set)
    ds = load_dataset("gowalla", data_dir=args.data_dir)
    resume = os.path.exists(os.path.join(args.workdir, "run.json"))
    start = len(read_history(history)) if resume else 0
    print(f"gowalla: {ds.num_users} users, {ds.num_items} items; backend "
          f"{resolve_backend(args.backend, ds.num_users + ds.num_items)}, lr {cfg.lr}, batch "
          f"{cfg.batch_size}, loss {cfg.loss} ({cfg.num_negatives} negatives), l2 {cfg.l2}; "
          f"{'resuming after epoch ' + str(start) if resume else 'new run'} in {args.workdir}",
          flush=True)
    stop = threading.Event()
    watcher = threading.Thread(target=follow, args=(history, start, stop), daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    try:
      result = fit(prepare(cfg, ds), args.workdir, resume=resume, progress=False,
                   extra_meta={"script": "benchmarks/gowalla_lightgcn.py"}).metrics
    finally:
      stop.set()
      watcher.join()
    print(f"finished in {time.perf_counter() - t0:.0f} s: test recall@{K} "
          f"{result[f'recall@{K}']:.4f}, ndcg@{K} {result[f'ndcg@{K}']:.4f}")

  rows = read_history(history)
  if args.status:
    for row in rows:
      if f"test/recall@{K}" in row or row is rows[-1]:
        print(format_row(row))
  print(json.dumps({"benchmark": "gowalla_lightgcn", "workdir": args.workdir,
                    "loadavg": os.getloadavg(), **summary(rows)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
