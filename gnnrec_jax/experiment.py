"""Everything a run needs before training: split, graph, text features, fingerprint.

Kept apart from `train.py` so that notebooks, `evaluate`, `recommend` and the benchmarks rebuild
exactly the same inputs from a saved config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import jraph
import numpy as np

from gnnrec_jax.config import Config
from gnnrec_jax.data import friends as friends_lib
from gnnrec_jax.data import side_features as side_lib
from gnnrec_jax.data import splits
from gnnrec_jax.data.types import Dataset, Interactions, Split
from gnnrec_jax.errors import DataError
from gnnrec_jax.graph import build as graph_lib


@dataclasses.dataclass
class Experiment:
  """The inputs of one run (host-side numpy; the trainer moves them to the device once).

  Attributes:
    config: the resolved config.
    dataset: the loaded dataset (catalogue, metadata).
    split: train / valid / test interactions.
    graph: the training graph (users at [0, U), items at [U, U+I)).
    features: [U+I, F] text vectors in node order, or None for ID-only models.
    feature_mask: [U+I] bool, which nodes have a text vector (None when features is None).
    fingerprint: sha256 of the data and the config fields that change the model; checkpoints and
      workdirs from another dataset or config are refused by comparing it.
    fitted_on: the interactions the parameters were trained on, when the graph holds more (a
      test-time history, `with_test_history`); None means `split.train`. Nodes outside it have
      untrained ID vectors, which models do not use (`has_id`).
    friends: the train / valid / test split of the dataset's friendships
      (`gnnrec_jax.data.friends.FriendSplit`, ratios `config.friend_split`), or None when the
      dataset has no social network. Only `friends.train` enters the graph (`social=true`) and
      the friendship objective (`social_weight > 0`).
    side: the encoded metadata columns of `config.side_features`
      (`gnnrec_jax.data.side_features.SideFeatures`: values [U+I, S], mask [U+I]), or None.
  """

  config: Config
  dataset: Dataset
  split: Split
  graph: jraph.GraphsTuple
  features: np.ndarray | None
  feature_mask: np.ndarray | None
  fingerprint: str
  fitted_on: Interactions | None = None
  friends: friends_lib.FriendSplit | None = None
  side: side_lib.SideFeatures | None = None

  @property
  def trained(self) -> Interactions:
    """The interactions the model's parameters are trained on (see `fitted_on`)."""
    return self.split.train if self.fitted_on is None else self.fitted_on

  @property
  def num_users(self) -> int:
    return self.dataset.num_users

  @property
  def num_items(self) -> int:
    return self.dataset.num_items


# Fields that do not change what is learned: a run may be resumed or re-evaluated with new values.
# `epochs` only while the learning rate is constant: a decaying schedule's horizon is the
# number of epochs, so changing it on resume would change every later step.
_RUNTIME_FIELDS = ("epochs", "checkpoint_every", "eval_batch_size", "patience", "test_history")


def _hash_arrays(h, inter: Interactions) -> None:
  for a in (inter.user, inter.item, inter.weight):
    if a is not None:
      h.update(np.ascontiguousarray(a).tobytes())


def _hash_meta(h, meta) -> None:
  """Item/user metadata columns (what text features are computed from), in a stable form."""
  for key in sorted(meta or {}):
    h.update(json.dumps([key, [str(v) for v in np.asarray(meta[key]).tolist()]]).encode())


def learning_config(config: Config) -> dict:
  """The config fields that change what is learned, minus those at their defaults.

  Leaving defaults out means that a field added to `Config` later (at a default that keeps the
  old behaviour) does not change the fingerprint of runs made before it existed.
  """
  runtime = _RUNTIME_FIELDS if config.lr_schedule == "constant" else tuple(
      f for f in _RUNTIME_FIELDS if f != "epochs")
  defaults = Config().to_dict()
  return {k: v for k, v in config.to_dict().items()
          if k not in runtime and v != defaults.get(k)}


def uses_friends(config: Config) -> bool:
  """Whether training reads the train friendships (as graph edges or as loss positives)."""
  return bool(config.social) or config.social_weight > 0


def fingerprint(config: Config, dataset: Dataset, split: Split,
                friends: friends_lib.FriendSplit | None = None,
                side: side_lib.SideFeatures | None = None) -> str:
  """sha256 over the dataset identity, the split's arrays, the learning-relevant config,
  when the model reads text features, the item/user metadata they are computed from, when
  training reads friendships, the train friendships, and the encoded side features."""
  h = hashlib.sha256()
  h.update(json.dumps({"name": dataset.name, "users": dataset.num_users,
                       "items": dataset.num_items}, sort_keys=True).encode())
  h.update(json.dumps(split.sizes(), sort_keys=True).encode())  # bytes alone lack boundaries
  for part in (split.train, split.valid, split.test):
    _hash_arrays(h, part)
  h.update(json.dumps(learning_config(config), sort_keys=True, default=str).encode())
  if config.text_features:
    _hash_meta(h, dataset.item_meta)
    _hash_meta(h, dataset.user_meta)
  if friends is not None and uses_friends(config):
    h.update(json.dumps({"friends": friends.sizes()}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(friends.train, np.int32).tobytes())
  if side is not None:  # the encoded matrix: metadata, kinds, imputation and scaling at once
    h.update(json.dumps({"side": side.names}).encode())
    h.update(np.ascontiguousarray(side.values, np.float32).tobytes())
  return h.hexdigest()


def split_fingerprint(dataset: Dataset, split: Split) -> dict:
  """What makes two runs' evaluations comparable user by user: the dataset, its catalogue and
  each part's size and content (the (user, item) pairs; weights only change training).

  Saved beside per-user metrics (`gnnrec_jax.evaluation.per_user`); `gnnrec-jax compare`
  refuses runs whose fingerprints differ and says which part differs.
  """
  out: dict = {"dataset": dataset.name, "num_users": int(dataset.num_users),
               "num_items": int(dataset.num_items)}
  for name in ("train", "valid", "test"):
    part = getattr(split, name)
    h = hashlib.sha256()
    for a in (part.user, part.item):
      h.update(np.ascontiguousarray(np.asarray(a, np.int64)).tobytes())
    out[name] = {"size": int(len(part)), "sha256": h.hexdigest()[:16]}
  return out


def text_features_for(config: Config, dataset: Dataset, train: Interactions):
  """Language-model vectors of every node (cached on disk): `(features [U+I, D], has_text [U+I])`.

  Users get the mean vector of their *train* items (never valid/test items: that would leak
  the targets), their profile sentence, both, or none, per `config.text_features`.
  """
  from gnnrec_jax.text.encoder import EncoderSpec  # the BERT weights load only when encoding
  from gnnrec_jax.text.node_texts import node_features
  return node_features(dataset, train, EncoderSpec(config.text_model),
                       users=config.text_features, progress=False)


def prepare(config: Config, dataset: Dataset, *, text_features=None) -> Experiment:
  """Splits the data, builds the graph and (optionally) the text features.

  Args:
    config: resolved config.
    dataset: loaded dataset.
    text_features: optional precomputed `(features [U+I, F], mask [U+I])`; when None and
      `config.text_features` is set they are computed (and cached) with the text encoder.
  """
  split = splits.make_split(dataset, config.split, ratios=tuple(config.split_ratios),
                            seed=config.split_seed if config.split_seed >= 0 else config.seed,
                            cold_fraction=config.cold_fraction)
  if len(split.train) == 0:
    raise DataError(f"{dataset.source or dataset.name}: the train split is empty")
  friends = friends_lib.friend_split(dataset, config.friend_split, config.seed)
  if uses_friends(config) and friends is None:
    raise DataError(f"config {'social=true' if config.social else 'social_weight > 0'} but "
                    f"dataset {dataset.name!r} has no user-user edges")
  # Statistics (means, medians, categories) from train nodes only: see side_features.build.
  side = (side_lib.build(dataset, split.train, config.side_features,
                         numeric=config.side_numeric_impute,
                         categorical=config.side_categorical_impute)
          if config.side_features else None)
  graph, features, mask = _inputs(config, dataset, split.train, friends, text_features)
  return Experiment(config, dataset, split, graph, features, mask,
                    fingerprint(config, dataset, split, friends, side), friends=friends,
                    side=side)


def _inputs(config: Config, dataset: Dataset, train: Interactions, friends, text_features=None):
  """(graph, features, feature_mask) built from the interactions `train`."""
  # Only the train friendships: valid/test pairs are what friend ranking must find.
  social = friends.train if config.social else None
  graph = graph_lib.build_graph(train, dataset.num_users, dataset.num_items,
                                weighted_norm=config.weighted_norm, self_loops=config.self_loops,
                                social=social)
  features = mask = None
  if config.text_features:
    if text_features is None:
      # Checked before the encoder loads: a run without text should fail in a second.
      from gnnrec_jax.text.node_texts import item_texts
      check_text_coverage(config, dataset, item_texts(dataset)[1])
      text_features = text_features_for(config, dataset, train)
    else:
      check_text_coverage(config, dataset, np.asarray(text_features[1])[dataset.num_users:])
    features, mask = text_features
  return graph, features, mask


# Below this share of items with a text vector, a model that needs text refuses to run: it would
# score (nearly) every item from a zero vector, a text-less run under a text model's name.
MIN_TEXT_COVERAGE = 0.2


def needs_text(config: Config) -> str | None:
  """What makes `config` a model that reads item text (None: text is an extra input)."""
  if config.model == "textgnn":
    return "textgnn (its items are their text)"
  if config.model == "l3ae":
    return "l3ae (its text side is fitted on the item vectors)"
  if config.filter_text_weight > 0:
    return f"{config.model} with filter_text_weight > 0"
  return None


def check_text_coverage(config: Config, dataset: Dataset, mask: np.ndarray) -> None:
  """Refuses a text run with no item text (or too little for a model that needs it); a partial
  coverage is a counted warning. `mask`: [I] bool, which items have a text."""
  from gnnrec_jax.data.checks import warn
  items = np.asarray(mask, bool)
  have, total = int(items.sum()), int(items.shape[0])
  share = have / max(total, 1)
  need = needs_text(config)
  where = dataset.source or dataset.name
  if have == 0 or (need and share < MIN_TEXT_COVERAGE):
    raise DataError(
        f"{need or 'text_features=' + config.text_features} needs item text, but {have:,} of "
        f"{total:,} items of {where} have any (below {MIN_TEXT_COVERAGE:.0%}): give item "
        f"metadata with a title or text column (--item-meta FILE)"
        + ("" if need else ", or unset text_features"))
  if have < total:
    warn(f"text_features: {total - have:,} of {total:,} items of {where} have no text; they get "
         f"zero text vectors")


def with_test_history(exp: Experiment, extra: Interactions | None = None) -> Experiment:
  """The experiment as the test pass sees it with `test_history="train+valid"`.

  Each user's valid interactions (or `extra`) join its history: the graph and the users' text are built from
  train + valid (so propagation, a user's mean of item vectors and a closed-form model's rows all
  read the valid item), while the parameters stay those trained on train (`fitted_on`: nodes
  seen only in valid keep no ID vector) and so do the side features' train statistics. Test
  masks train and valid items as before. No retraining: the protocol of sequential
  leave-one-out benchmarks, where the test sequence holds the valid item.
  """
  s = exp.split
  extra = s.valid if extra is None else extra
  if not len(extra):
    return exp
  train = Interactions.concat([s.train, extra])
  split = Split(train, s.valid, s.test, cold_items=s.cold_items)
  graph, features, mask = _inputs(exp.config, exp.dataset, train, exp.friends)
  return dataclasses.replace(exp, split=split, graph=graph, features=features,
                             feature_mask=mask, fitted_on=exp.trained)
