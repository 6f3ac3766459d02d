"""The seed document's worked example (§4.3), recomputed with SoftmaxEdgeConv.

Seed: ../shared/seed/000_edfa8df22486af57.txt (beside the repository). 3 users, 3 items,
relation weights u1-i1 0.8, u1-i2 0.2, u2-i2 0.6, u2-i3 0.4, u3-i3 0.8, and initial vectors
[0.5, 0.5] for every user and item.
Its feature tables ([0.1, 0.2], [0.3, 0.4], [0.5, 0.6] for users and items) are never used in its
arithmetic; `test_seed_feature_table_as_initial_vectors` uses them as a non-degenerate example.

Our reading of §4.1: alpha_ij^(t+1) = softmax over j in N(i) of u_i^(t) . v_j^(t) (each receiver's
incoming edges), u_i^(t+1) = sigma(sum_j alpha_ij v_j^(t)), sigma = identity, no sqrt(d) scaling,
tau = 1; step 1 uses the relation weights normalised per receiver (w_ij / sum_k w_ik); items are
nodes too and are updated from their users by the same rule; alpha is recomputed from the previous
layer's output. Because every initial vector is [0.5, 0.5] and each alpha row is a convex
combination, every vector stays [0.5, 0.5] and the step-2 alphas are uniform over each node's
neighbours. The seed prints other numbers; where they do not follow from its own equations:

§4.3 arithmetic
  1. Softmax values: "softmax(0.5·0.5) = 0.5", "softmax(0.5·0.3) = 0.3", "softmax(0.9·0.5) = 0.8",
     ... The printed value is neither the product (0.25, 0.15, 0.45) nor the softmax of a single
     scalar (always 1); over a receiver's neighbours it would be a distribution summing to 1.
  2. The dot-product factors are not u·v: every vector is [0.5, 0.5] at step 0, so u·v = 0.5, yet
     it writes 0.5·0.3 (0.3 is item 2's unused feature value), 0.5·0.6 and 0.5·0.4 (user 2's
     relation weights), and 0.2·0.5 / 0.2·0.3 for user 3 (0.2 is its step-1 value, though
     alpha^(1) = softmax(u^(0)·v^(0)) calls for step 0).
  3. It assigns alphas to non-edges (1,3), (2,1), (3,1), (3,2) (weights 0.5, 0.5, 0.2, 0.3 after
     step 1), although softmax_j ranges over N(i) and step 1 gave them weight 0.0.
  4. Rows of alpha sum to more than 1: user 1 gets 0.5 + 0.3 + 0.5 = 1.3 (user 2: 1.5, user 3:
     0.7; after step 2, 2.4 / 2.1 / 1.2).
  5. User 3: sigma(0.8·[0.5, 0.5]) = [0.4, 0.4] (the line before it says [0.4, 0.4]), printed as
     sigma([0.2, 0.2]) = [0.2, 0.2].
     In step 2, user 1's first term 0.5·[0.5, 0.5] is written as [0.5, 0.5], giving [0.9, 0.9];
     even with its own alphas the sum is 1.3·0.5 = [0.65, 0.65].
  6. Item vectors are never updated (both tables list items at [0.5, 0.5]) although items are
     nodes of the graph and have neighbours.
  7. Step 1 uses the raw relation weights without normalisation: user 3's single weight is 0.8,
     so its update shrinks the vector; normalised per receiver it is 1.0.
  8. Schedule: step 2 uses alpha^(1), computed from the step-0 vectors, not from the step-1
     output. Here both give the same numbers (all vectors are equal either way); we recompute
     from the previous layer's output, as alpha^(t+1) = softmax(u^(t)·v^(t)) says. The lagged
     schedule is not implemented.
§4.2 derivation
  9. It claims alpha_ii = sum_j alpha_ij (a node's self-weight equals its total weight) and
     rewrites the update as sigma(v_i + sum_j (alpha_ij - alpha_ii) v_j); nothing defines a
     self-edge, and with softmax weights that identity cannot hold (it would need the other
     weights to sum to 0).
  10. It normalises over k in N(j) (the item's neighbours: exp(u_i·v_j) / sum_k exp(u_k·v_j))
     whereas the update sums over j in N(i); the two do not agree, so its alphas would not be a
     distribution over the terms the update sums.
§5.2 code listing
  11. Users and items share one index space without an offset: relation_data uses user ids 0..2
     and item ids 1..3, so item 1 and user 1 are the same index.
  12. edge_indices is built and passed to train_model but never used: no message passing happens.
  13. forward takes mean(0) over all users and all items, so every user gets the same
     representation (and the float feature tensors are passed as nn.Embedding indices, which
     PyTorch rejects: the listing cannot run as written).
  14. BCEWithLogitsLoss against all-ones labels: no negatives, so the trivial "everything
     positive" predictor is optimal.
  15. "Accuracy: 0.9000" cannot arise from 3 predictions (possible values 0, 1/3, 2/3, 1).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.graph.build import build_graph, pad_graph
from gnnrec_jax.models.embedding import create_model
from gnnrec_jax.models.layers import SoftmaxEdgeConv

# Nodes: u1, u2, u3 = 0, 1, 2; i1, i2, i3 = 3, 4, 5 (items at U + i).
U1, U2, U3, I1, I2, I3 = range(6)
# build_graph sorts edges by (receiver, sender); each relation appears in both directions.
EDGES = [(I1, U1), (I2, U1),   # receiver u1 <- i1 (w 0.8), i2 (w 0.2)
         (I2, U2), (I3, U2),   # receiver u2 <- i2 (0.6), i3 (0.4)
         (I3, U3),             # receiver u3 <- i3 (0.8)
         (U1, I1),             # receiver i1 <- u1 (0.8)
         (U1, I2), (U2, I2),   # receiver i2 <- u1 (0.2), u2 (0.6)
         (U2, I3), (U3, I3)]   # receiver i3 <- u2 (0.4), u3 (0.8)

# Step 1: weights normalised per receiver, w_ij / sum_k w_ik:
#   u1: 0.8/1.0, 0.2/1.0; u2: 0.6/1.0, 0.4/1.0; u3: 0.8/0.8; i1: 0.8/0.8;
#   i2: 0.2/0.8 = 0.25, 0.6/0.8 = 0.75; i3: 0.4/1.2 = 1/3, 0.8/1.2 = 2/3.
ALPHA_STEP1 = [0.8, 0.2, 0.6, 0.4, 1.0, 1.0, 0.25, 0.75, 1 / 3, 2 / 3]
# Step 2: every vector is still [0.5, 0.5], so every logit is 0.5·0.5 + 0.5·0.5 = 0.5 and the
# softmax is uniform over each receiver's neighbours: 1/2 for two neighbours, 1 for one.
ALPHA_STEP2 = [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]


def seed_graph(padded: bool = False):
  train = Interactions(user=np.array([0, 0, 1, 1, 2]), item=np.array([0, 1, 1, 2, 2]),
                       weight=np.array([0.8, 0.2, 0.6, 0.4, 0.8]))
  g = build_graph(train, 3, 3)
  if padded:
    g = pad_graph(g, n_node=8, n_edge=16)
  return jax.tree.map(jnp.asarray, g)


def seed_layers(num_nodes: int):
  first = SoftmaxEdgeConv(num_nodes, alpha_from_weights=True, scale_logits=False,
                          temperature=1.0, activation="identity")
  second = SoftmaxEdgeConv(num_nodes, scale_logits=False, temperature=1.0,
                           activation="identity")
  return first, second


def run_two_steps(h0, graph, num_nodes, jit):
  first, second = seed_layers(num_nodes)

  def f(h0, graph):
    h1, a1 = first.apply({}, h0, graph)
    h2, a2 = second.apply({}, h1, graph)
    return h1, a1, h2, a2

  return (jax.jit(f) if jit else f)(h0, graph)


def test_graph_edges_match_the_seed_relations():
  g = seed_graph()
  assert list(zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist())) == EDGES
  np.testing.assert_allclose(g.edges["weight"],
                             [0.8, 0.2, 0.6, 0.4, 0.8, 0.8, 0.2, 0.6, 0.4, 0.8])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_seed_example_two_steps(jit, padded):
  g = seed_graph(padded)
  n = 8 if padded else 6
  h0 = jnp.full((n, 2), 0.5).at[6:].set(0.0)
  h1, a1, h2, a2 = run_two_steps(h0, g, n, jit)
  np.testing.assert_allclose(a1[:10, 0], ALPHA_STEP1, rtol=1e-6)
  np.testing.assert_allclose(a2[:10, 0], ALPHA_STEP2, rtol=1e-6)
  # Step 1: u1 = 0.8·[.5,.5] + 0.2·[.5,.5] = [.5,.5]; u3 = 1.0·[.5,.5]; i2 = .25·[.5,.5] +
  # .75·[.5,.5] = [.5,.5]; every node is a convex combination of [.5,.5] vectors.
  np.testing.assert_allclose(h1[:6], np.full((6, 2), 0.5), rtol=1e-6)
  # Step 2: uniform alphas over [.5,.5] vectors: again [.5,.5] everywhere. The seed prints
  # users [0.9,0.9], [0.75,0.75], [0.35,0.35] (see the module docstring, items 1-8).
  np.testing.assert_allclose(h2[:6], np.full((6, 2), 0.5), rtol=1e-6)
  if padded:
    np.testing.assert_array_equal(a1[10:], 0.0)
    np.testing.assert_array_equal(a2[10:], 0.0)
    np.testing.assert_array_equal(h2[6:], 0.0)


def test_seed_example_through_the_model():
  """The same numbers from `create_model("softmax_gnn")` with the ID table set to 0.5."""
  cfg = Config(model="softmax_gnn", embed_dim=2, num_layers=2, layer_combine="last",
               scale_logits=False, temperature=1.0, activation="identity",
               initial_alpha="weights", attention_mix=1.0)
  model = create_model(cfg, num_users=3, num_items=3)
  g = seed_graph()
  params = model.init(jax.random.key(0), g)["params"]
  params = jax.tree.map(lambda x: x, params)
  params["inputs"]["embedding"] = jnp.full((6, 2), 0.5)
  (final, ego), state = jax.jit(
      lambda p, g: model.apply({"params": p}, g, mutable=["intermediates"]))(params, g)
  np.testing.assert_allclose(ego, np.full((6, 2), 0.5))
  np.testing.assert_allclose(final, np.full((6, 2), 0.5), rtol=1e-6)
  inter = state["intermediates"]
  np.testing.assert_allclose(inter["alpha_0"][0][:, 0], ALPHA_STEP1, rtol=1e-6)
  np.testing.assert_allclose(inter["alpha_1"][0][:, 0], ALPHA_STEP2, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_seed_feature_table_as_initial_vectors(jit):
  """A non-degenerate variant: the seed's unused feature table as the initial vectors."""
  g = seed_graph()
  feats = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
  h0 = jnp.asarray(feats + feats)  # users 1..3, then items 1..3
  h1, a1, h2, a2 = run_two_steps(h0, g, 6, jit)
  np.testing.assert_allclose(a1[:, 0], ALPHA_STEP1, rtol=1e-6)
  # Step 1 (alphas from the weights):
  #   u1 = 0.8·[.1,.2] + 0.2·[.3,.4]   = [.08+.06, .16+.08]       = [0.14, 0.24]
  #   u2 = 0.6·[.3,.4] + 0.4·[.5,.6]   = [.18+.20, .24+.24]       = [0.38, 0.48]
  #   u3 = 1.0·[.5,.6]                                            = [0.50, 0.60]
  #   i1 = 1.0·[.1,.2]                                            = [0.10, 0.20]
  #   i2 = 0.25·[.1,.2] + 0.75·[.3,.4] = [.025+.225, .05+.30]     = [0.25, 0.35]
  #   i3 = 1/3·[.3,.4] + 2/3·[.5,.6]   = [.1+1/3, .4/3+.4]        = [1.3/3, 1.6/3]
  u1, u2, u3 = [0.14, 0.24], [0.38, 0.48], [0.5, 0.6]
  i1, i2, i3 = [0.1, 0.2], [0.25, 0.35], [1.3 / 3, 1.6 / 3]
  np.testing.assert_allclose(h1, [u1, u2, u3, i1, i2, i3], rtol=1e-6)
  # Step 2 logits (dot products of step-1 vectors; the dot product is symmetric):
  #   u1·i1 = .014 + .048 = .062        u1·i2 = .035 + .084 = .119
  #   u2·i2 = .095 + .168 = .263        u2·i3 = .38·1.3/3 + .48·1.6/3 = (.494 + .768)/3 = 1.262/3
  #   u3·i3 = (.65 + .96)/3 = 1.61/3
  def pair(a, b):  # softmax over two logits
    return 1 / (1 + math.exp(b - a)), 1 / (1 + math.exp(a - b))

  a_u1 = pair(0.062, 0.119)        # u1 <- i1, i2
  a_u2 = pair(0.263, 1.262 / 3)    # u2 <- i2, i3
  a_i2 = pair(0.119, 0.263)        # i2 <- u1, u2
  a_i3 = pair(1.262 / 3, 1.61 / 3)  # i3 <- u2, u3
  expected_a2 = [*a_u1, *a_u2, 1.0, 1.0, *a_i2, *a_i3]
  np.testing.assert_allclose(a2[:, 0], expected_a2, rtol=1e-5)

  def mix(a, x, y):
    return [a[0] * x[k] + a[1] * y[k] for k in range(2)]

  expected_h2 = [mix(a_u1, i1, i2), mix(a_u2, i2, i3), i3,   # u3 <- i3 only
                 u1,                                         # i1 <- u1 only
                 mix(a_i2, u1, u2), mix(a_i3, u2, u3)]
  np.testing.assert_allclose(h2, expected_h2, rtol=1e-5)


def test_seed_preset_is_the_rule_of_the_example():
  """`--config seed` is the literal rule: with d = 2 and the [0.5, 0.5] table it gives §4.3's
  numbers as recomputed above (alphas from the weights, then uniform softmax alphas), and its
  prediction is the last layer's vectors."""
  from gnnrec_jax import configs
  cfg = configs.get_config("seed")
  assert (cfg.model, cfg.activation, cfg.scale_logits, cfg.temperature, cfg.qk_proj,
          cfg.attention_mix, cfg.initial_alpha, cfg.layer_combine, cfg.num_layers) == (
              "softmax_gnn", "identity", False, 1.0, False, 1.0, "weights", "last", 2)
  model = create_model(cfg.replace(embed_dim=2), num_users=3, num_items=3)
  g = seed_graph()
  params = model.init(jax.random.key(0), g)["params"]
  feats = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
  params["inputs"]["embedding"] = jnp.asarray(feats + feats)
  (final, _), state = model.apply({"params": params}, g, mutable=["intermediates"])
  inter = state["intermediates"]
  np.testing.assert_allclose(inter["alpha_0"][0][:, 0], ALPHA_STEP1, rtol=1e-6)
  h1, a1, h2, a2 = run_two_steps(jnp.asarray(feats + feats), g, 6, jit=False)
  np.testing.assert_allclose(inter["alpha_1"][0], a2, rtol=1e-6)
  np.testing.assert_allclose(final, h2, rtol=1e-6)  # "last": the step-2 vectors, not a mean


def test_train_config_seed_from_the_command_line(tmp_path):
  """`gnnrec-jax train --config seed` runs the seed's rule on the seed's own relation table."""
  import json

  from gnnrec_jax import cli
  csv = tmp_path / "seed.csv"
  csv.write_text("user,item,weight\n1,1,0.8\n1,2,0.2\n2,2,0.6\n2,3,0.4\n3,3,0.8\n")
  wd = tmp_path / "run"
  assert cli.main(["train", "--config", "seed", "--dataset", "csv", "--data-dir", str(csv),
                   "--columns", "user=user,item=item,weight=weight", "--workdir", str(wd),
                   "--no-progress", "--set", "epochs=1", "--set", "split_ratios=1.0,0.0,0.0",
                   "--set", "topk=1", "--set", "select_metric=ndcg@1",
                   "--set", "num_negatives=2"]) == 0
  cfg = json.loads((wd / "config.json").read_text())
  assert {k: cfg[k] for k in ("model", "scale_logits", "attention_mix", "initial_alpha",
                              "layer_combine", "num_layers", "activation")} == {
      "model": "softmax_gnn", "scale_logits": False, "attention_mix": 1.0,
      "initial_alpha": "weights", "layer_combine": "last", "num_layers": 2,
      "activation": "identity"}
