"""Times RecBole 1.2.1's own trainer on our protocol; the peer for side-by-side speed benchmarks.

Runs INSIDE benchmarks/_peers/recbole-venv (made by setup_recbole_venv.sh), never in the package's
venv: RecBole needs torch and numpy<2. The last line of stdout is one JSON object (keys documented
in benchmarks/peers/README.md); everything RecBole writes (logs, tensorboard, checkpoints, the
converted Gowalla atomic files) goes to a temporary directory that is removed afterwards.

  benchmarks/_peers/recbole-venv/bin/python benchmarks/peers/recbole_runner.py \
      --model LightGCN --dataset ml-100k --epochs 5

Timing wraps RecBole's own code paths with time.perf_counter: `Trainer._train_epoch` (one pass of
mini-batches, negative sampling included) and `Trainer.evaluate` (one full-ranking evaluation of
every user in the split). Dataset loading, splitting and model construction are timed as setup_s.
"""

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

MODELS = ("LightGCN", "NGCF", "BPR")
DATASETS = ("ml-100k", "gowalla")
# RecBole resolves a dataset name to built-in properties and a download URL; its own "gowalla"
# is a different preprocessing, so the LightGCN split gets a name RecBole does not know.
GOWALLA_NAME = "gowalla-lightgcn"
TOPK = 20


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, choices=MODELS)
  p.add_argument("--dataset", required=True, choices=DATASETS)
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument(
      "--data-dir",
      default=None,
      help="gowalla: folder with LightGCN's train.txt/test.txt (default ../shared/data/gowalla "
      "from the repo root); ml-100k: folder holding ml-100k/ml-100k.inter (default: the copy "
      "bundled in the recbole wheel).",
  )
  p.add_argument(
      "--eval-step",
      type=int,
      default=1,
      help="validate every N epochs inside fit (RecBole's eval_step; 0 = never).",
  )
  p.add_argument("--no-test", action="store_true", help="skip the final test evaluation.")
  p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = torch default.")
  p.add_argument("--seed", type=int, default=2020)
  p.add_argument("--verbose", action="store_true", help="RecBole's INFO log on stderr.")
  args = p.parse_args(argv)
  if args.epochs < 1:
    p.error("--epochs must be >= 1")
  return args


def write_gowalla_atomic(src_dir, dst_root):
  """Converts LightGCN's `user item item ...` files into RecBole atomic files, split predefined.

  The LightGCN split has no validation part. RecBole's fit validates on the valid file, so the
  test file is copied there: valid scores then equal test scores (no model selection happens at
  a fixed epoch count, so this is for timing only). The copy does not leak into the test ranking:
  RecBole masks history = (train + valid + test items) - test positives = train items.

  Returns:
    (data_path, counts) where data_path/GOWALLA_NAME/ holds the .train/.valid/.test.inter files.
  """
  out_dir = os.path.join(dst_root, GOWALLA_NAME)
  os.makedirs(out_dir, exist_ok=True)
  counts = {}
  for part in ("train", "test"):
    src = os.path.join(src_dir, f"{part}.txt")
    if not os.path.exists(src):
      sys.exit(f"recbole_runner: {src} not found (expected LightGCN's {part}.txt)")
    rows = []
    with open(src) as f:
      for lineno, line in enumerate(f, 1):
        ids = line.split()
        if not ids:
          continue
        if not all(t.isdigit() for t in ids):
          sys.exit(f"recbole_runner: {src}:{lineno}: expected 'user item item ...' integers")
        rows.extend(f"{ids[0]}\t{i}\n" for i in ids[1:])
    counts[part] = len(rows)
    header = "user_id:token\titem_id:token\n"
    for name in ("train",) if part == "train" else ("valid", "test"):
      with open(os.path.join(out_dir, f"{GOWALLA_NAME}.{name}.inter"), "w") as f:
        f.write(header)
        f.writelines(rows)
  return dst_root, counts


def recbole_config(args, data_path):
  """Our protocol in RecBole's terms (see the task brief: issue 7)."""
  cfg = {
      "data_path": data_path,
      "load_col": {"inter": ["user_id", "item_id"]},  # no rating threshold: all positive
      "USER_ID_FIELD": "user_id",
      "ITEM_ID_FIELD": "item_id",
      "field_separator": "\t",
      "epochs": args.epochs,
      "train_batch_size": 2048,
      "learner": "adam",
      "learning_rate": 1e-3,
      "weight_decay": 0.0,
      "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
      "embedding_size": 64,
      "reg_weight": 1e-4,
      "eval_args": {
          "split": {"RS": [0.8, 0.1, 0.1]},
          "order": "RO",
          "group_by": "user",
          "mode": "full",
      },
      "metrics": ["Recall", "NDCG"],
      "topk": [TOPK],
      "valid_metric": f"NDCG@{TOPK}",
      "eval_step": args.eval_step,
      "stopping_step": 10**6,  # time a fixed number of epochs, never stop early
      "seed": args.seed,
      "reproducibility": True,
      "gpu_id": "",  # RecBole picks CPU when gpu_id is empty
      "use_gpu": False,
      "worker": 0,
      "show_progress": False,
      "save_dataset": False,
      "save_dataloaders": False,
      "log_wandb": False,
      "state": "INFO" if args.verbose else "WARNING",
      "checkpoint_dir": os.path.join(os.getcwd(), "saved"),
  }
  if args.model == "LightGCN":
    cfg["n_layers"] = 3
  elif args.model == "NGCF":
    cfg["hidden_size_list"] = [64, 64, 64]  # 3 layers of width 64; dropouts stay RecBole's
  if args.dataset == "gowalla":
    cfg["benchmark_filename"] = ["train", "valid", "test"]
  return cfg


class _NullWriter:
  """Stands in for tensorboard's SummaryWriter: RecBole's Trainer makes one unconditionally."""

  def __getattr__(self, name):
    return lambda *a, **k: None


def timed_trainer_class(base):
  """Subclass of RecBole's trainer recording wall time of its epoch and evaluation methods."""

  class TimedTrainer(base):
    train_s = []
    eval_s = []

    def _train_epoch(self, *args, **kwargs):
      t0 = time.perf_counter()
      out = super()._train_epoch(*args, **kwargs)
      self.train_s.append(time.perf_counter() - t0)
      return out

    def evaluate(self, *args, **kwargs):
      t0 = time.perf_counter()
      out = super().evaluate(*args, **kwargs)
      self.eval_s.append(time.perf_counter() - t0)
      return out

  TimedTrainer.train_s, TimedTrainer.eval_s = [], []
  return TimedTrainer


def run(args):
  import numpy as np
  import recbole
  import recbole.trainer.trainer as rb_trainer
  import torch
  from recbole.config import Config
  from recbole.data import create_dataset, data_preparation
  from recbole.utils import get_model, get_trainer, init_logger, init_seed

  if args.threads > 0:
    torch.set_num_threads(args.threads)
  # No event files: RecBole builds the writer in Trainer.__init__ with no switch to turn it off.
  rb_trainer.get_tensorboard = lambda logger: _NullWriter()

  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  load_start = os.getloadavg()
  work = tempfile.mkdtemp(prefix="recbole-runner-")
  cwd = os.getcwd()
  # RecBole writes ./log/ relative to the working directory.
  os.chdir(work)
  try:
    t0 = time.perf_counter()
    extra = {}
    if args.dataset == "ml-100k":
      data_path = args.data_dir or os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
      name = "ml-100k"
      if not os.path.exists(os.path.join(data_path, name, f"{name}.inter")):
        sys.exit(f"recbole_runner: {data_path}/{name}/{name}.inter not found")
    else:
      src = args.data_dir or os.path.join(repo, "..", "shared", "data", "gowalla")
      data_path, counts = write_gowalla_atomic(os.path.abspath(src), os.path.join(work, "data"))
      name = GOWALLA_NAME
      extra["valid_is_test"] = True
      extra["convert_s"] = round(time.perf_counter() - t0, 3)
    # Config also parses sys.argv as `--key=value` overrides; ours are not RecBole's.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
      config = Config(model=args.model, dataset=name, config_dict=recbole_config(args, data_path))
    finally:
      sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    if not args.verbose:
      logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer_cls = timed_trainer_class(get_trainer(config["MODEL_TYPE"], config["model"]))
    trainer = trainer_cls(config, model)
    setup_s = time.perf_counter() - t0

    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    n_valid_evals = len(trainer.eval_s)
    test = None
    if not args.no_test:
      result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
      test = {k: float(v) for k, v in result.items()}
  finally:
    os.chdir(cwd)
    shutil.rmtree(work, ignore_errors=True)

  train_s = trainer.train_s
  valid_s = trainer.eval_s[:n_valid_evals]
  test_s = trainer.eval_s[n_valid_evals:]
  later = train_s[1:] or train_s
  all_eval = valid_s + test_s
  out = {
      "peer": "recbole",
      "model": args.model,
      "dataset": args.dataset,
      "epochs": len(train_s),
      "train_epoch_s": round(statistics.mean(later), 4),
      "train_epoch_first_s": round(train_s[0], 4),
      "train_epoch_s_all": [round(t, 4) for t in train_s],
      # Median: a single evaluation is short enough (ml-100k: ~0.1 s) for other jobs on a
      # shared machine to swing the mean.
      "eval_s": round(statistics.median(all_eval), 4) if all_eval else None,
      "eval_s_all": [round(t, 4) for t in all_eval],
      "test_eval_s": round(test_s[0], 4) if test_s else None,
      "setup_s": round(setup_s, 3),
      "num_users": int(dataset.user_num - 1),  # RecBole reserves id 0 for [PAD]
      "num_items": int(dataset.item_num - 1),
      "num_train": int(len(train_data._dataset)),
      "torch_threads": torch.get_num_threads(),
      "torch_version": torch.__version__,
      "recbole_version": recbole.__version__,
      "numpy_version": np.__version__,
      "loadavg_start": [round(x, 2) for x in load_start],
      "loadavg_end": [round(x, 2) for x in os.getloadavg()],
      **extra,
  }
  if test is not None:
    out["test"] = {
        f"recall@{TOPK}": round(test[f"recall@{TOPK}"], 4),
        f"ndcg@{TOPK}": round(test[f"ndcg@{TOPK}"], 4),
    }
  return out


def main(argv=None):
  args = parse_args(argv)
  # RecBole 1.2.1 on current torch/pandas/setuptools warns on every import and epoch.
  warnings.simplefilter("ignore")
  out = run(args)
  print(
      f"recbole {out['model']} on {out['dataset']}: train {out['train_epoch_s']:.3f} s/epoch "
      f"(first {out['train_epoch_first_s']:.3f} s), eval "
      f"{out['eval_s'] if out['eval_s'] is None else round(out['eval_s'], 3)} s, "
      f"{out['torch_threads']} torch threads, load {out['loadavg_start'][0]}"
  )
  print(json.dumps(out), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
