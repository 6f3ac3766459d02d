"""Training curves as PNG (an Agg-canvas `Figure`: works without a display, in any backend)."""
from __future__ import annotations

from matplotlib.figure import Figure  # not pyplot: leaves a notebook's backend alone


def plot_history(history: list[dict], path: str, *, select_metric: str = "ndcg@20") -> str | None:
  """Loss and validation (or test-curve) metrics per epoch, side by side. Returns the path."""
  if not history:
    return None
  epochs = [r["epoch"] for r in history]
  fig = Figure(figsize=(10, 3.6))
  ax_loss, ax_metric = fig.subplots(1, 2)
  ax_loss.plot(epochs, [r["loss"] for r in history], color="tab:blue")
  ax_loss.set_xlabel("epoch")
  ax_loss.set_ylabel("train loss")
  ax_loss.grid(alpha=0.3)
  name = select_metric.split("@")[0]
  keys = sorted({k for r in history for k in r
                 if (k.startswith("valid/") or k.startswith("test/")) and k.split("/")[1].split("@")[0] in (name, "recall")})
  for key in keys:
    pts = [(r["epoch"], r[key]) for r in history if key in r]
    ax_metric.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=key)
  ax_metric.set_xlabel("epoch")
  ax_metric.set_ylabel("metric")
  ax_metric.grid(alpha=0.3)
  if keys:
    ax_metric.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path
