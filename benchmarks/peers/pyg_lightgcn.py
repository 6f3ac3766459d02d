"""PyG's `LightGCN` on Gowalla with the protocol of PyG's own LightGCN example, timed.

  PYTHON_WITH_PYG benchmarks/peers/pyg_lightgcn.py [--data-dir ../shared/data/gowalla] \
      [--epochs 1] [--batch-size 2048] [--layers 3] [--dim 64] [--threads 0] [--device auto]

Runs in a Python that has torch and torch_geometric (never imports gnnrec_jax), so it can live in
the peer's own venv or image. The protocol is PyG's `examples/lightgcn.py`, with Gowalla's
LightGCN split in place of AmazonBook: one node space (items offset by the user count), the
train interactions in both directions as the message-passing `edge_index`, batches of train
(user, item) pairs shuffled by a `DataLoader`, one uniform negative item per pair,
`model.recommendation_loss` (BPR plus PyG's L2 on the batch's nodes) with Adam lr 1e-3; the
evaluation scores every user against every item in batches of users, masks train items with
-inf, takes the top 20 and counts Recall@20 as PyG's example does (hits / the user's test
items, users with test items averaged). Defaults give the issue's comparison setting (d = 64,
3 layers, batch 2048, as gnnrec-jax's Gowalla line); `--batch-size 8192 --layers 2` is the
example's own choice.

Times: each epoch's training loop (`train_epoch_s`, median over epochs), and one full
evaluation (`eval_s`, median over `--eval-repeats`), each bracketed by `torch.cuda.synchronize()`
on a GPU. The last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

GOWALLA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                           "shared", "data", "gowalla")


def read_lightgcn_file(path: str):
  """LightGCN's format: one line per user, `user item item ...`; returns (users, items) lists."""
  users, items = [], []
  with open(path) as f:
    for line in f:
      parts = line.split()
      if len(parts) > 1:
        u = int(parts[0])
        users += [u] * (len(parts) - 1)
        items += [int(x) for x in parts[1:]]
  return users, items


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=GOWALLA_DIR)
  p.add_argument("--epochs", type=int, default=1)
  p.add_argument("--batch-size", type=int, default=2048)
  p.add_argument("--layers", type=int, default=3)
  p.add_argument("--dim", type=int, default=64)
  p.add_argument("--eval-repeats", type=int, default=2)
  p.add_argument("--eval-users", type=int, default=4096, help="users per scoring batch")
  p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = default")
  p.add_argument("--device", default="auto", help="auto | cpu | cuda")
  p.add_argument("--max-steps", type=int, default=0,
                 help="stop each epoch after this many steps and extrapolate (0 = full epochs)")
  a = p.parse_args(argv)

  import torch
  import torch_geometric
  from torch_geometric.nn import LightGCN
  from torch_geometric.utils import degree

  if a.threads:
    torch.set_num_threads(a.threads)
  device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                        if a.device == "auto" else a.device)

  def sync():
    if device.type == "cuda":
      torch.cuda.synchronize()

  tr_u, tr_i = read_lightgcn_file(os.path.join(a.data_dir, "train.txt"))
  te_u, te_i = read_lightgcn_file(os.path.join(a.data_dir, "test.txt"))
  num_users = max(max(tr_u), max(te_u)) + 1
  num_items = max(max(tr_i), max(te_i)) + 1
  train = torch.tensor([tr_u, tr_i], dtype=torch.long)
  train[1] += num_users  # one node space, as the example's to_homogeneous() gives
  test = torch.tensor([te_u, te_i], dtype=torch.long)
  test[1] += num_users
  edge_index = torch.cat([train, train.flip(0)], dim=1).to(device)
  train, test = train.to(device), test.to(device)

  torch.manual_seed(2020)
  model = LightGCN(num_nodes=num_users + num_items, embedding_dim=a.dim,
                   num_layers=a.layers).to(device)
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  loader = torch.utils.data.DataLoader(range(train.size(1)), shuffle=True,
                                       batch_size=a.batch_size)

  def train_epoch():
    model.train()
    steps = 0
    for index in loader:
      pos = train[:, index]
      neg = torch.stack([pos[0], torch.randint(num_users, num_users + num_items,
                                               (index.numel(),), device=device)])
      label_index = torch.cat([pos, neg], dim=1)
      opt.zero_grad()
      pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
      loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
      loss.backward()
      opt.step()
      steps += 1
      if a.max_steps and steps >= a.max_steps:
        break
    return steps

  @torch.no_grad()
  def evaluate(k=20):
    model.eval()
    emb = model.get_embedding(edge_index)
    user_emb, item_emb = emb[:num_users], emb[num_users:]
    recall, users = 0.0, 0
    for start in range(0, num_users, a.eval_users):
      end = min(start + a.eval_users, num_users)
      logits = user_emb[start:end] @ item_emb.t()
      m = (train[0] >= start) & (train[0] < end)
      logits[train[0, m] - start, train[1, m] - num_users] = float("-inf")
      truth = torch.zeros_like(logits, dtype=torch.bool)
      m = (test[0] >= start) & (test[0] < end)
      truth[test[0, m] - start, test[1, m] - num_users] = True
      count = degree(test[0, m] - start, num_nodes=logits.size(0))
      hits = truth.gather(1, logits.topk(k, dim=-1).indices).sum(dim=-1)
      recall += float((hits / count.clamp(1e-6)).sum())
      users += int((count > 0).sum())
    return recall / users

  steps_per_epoch = len(loader)
  epoch_s, eval_s = [], []
  for _ in range(a.epochs):
    sync()
    t0 = time.perf_counter()
    steps = train_epoch()
    sync()
    epoch_s.append((time.perf_counter() - t0) * steps_per_epoch / steps)
  recall = None
  for _ in range(max(a.eval_repeats, 1)):
    sync()
    t0 = time.perf_counter()
    recall = evaluate()
    sync()
    eval_s.append(time.perf_counter() - t0)
  print(f"PyG LightGCN on Gowalla ({device}): epoch {statistics.median(epoch_s):.2f} s "
        f"({steps_per_epoch} steps{', extrapolated' if a.max_steps else ''}), full evaluation "
        f"{statistics.median(eval_s):.2f} s, test Recall@20 {recall:.4f} after {a.epochs} epochs")
  print(json.dumps({
      "peer": "pyg", "model": "LightGCN", "dataset": "gowalla", "device": str(device),
      "torch_version": torch.__version__, "pyg_version": torch_geometric.__version__,
      "torch_threads": torch.get_num_threads(), "epochs": a.epochs,
      "batch_size": a.batch_size, "num_layers": a.layers, "embed_dim": a.dim,
      "steps_per_epoch": steps_per_epoch, "max_steps": a.max_steps,
      "train_epoch_s": statistics.median(epoch_s), "train_epoch_s_all": epoch_s,
      "eval_s": statistics.median(eval_s), "eval_s_all": eval_s, "recall@20": recall,
      "num_users": num_users, "num_items": num_items, "num_train": len(tr_u),
      "loadavg": os.getloadavg()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
