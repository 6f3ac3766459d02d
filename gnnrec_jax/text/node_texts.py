"""One sentence per item and user, and their vectors laid out in the graph's node order.

Items are described by their metadata ("Toy Story (1995). Genres: Animation, Children's,
Comedy."), users by their profile ("A 24-year-old male technician."), or by their train history:
either the mean text vector of the items they interacted with (re-normalised, `history`) or one
text of those items' titles, most recent first ("Fargo (1996); Heat (1995); ...",
`history_text`), which the encoder truncates to its length, so the oldest titles drop out. Nodes
with no metadata get the empty text, a zero vector and `has_text=False`, so a model can mask them
or fall back to a learned embedding.

Node order is the one of `gnnrec_jax.graph.build.build_graph`: users at [0, U), item i at U + i.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.types import Dataset, Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.text import vectors as vectors_lib

USER_MODES = ("history", "history_text", "profile", "both", "none")
# `history_text`: titles joined by HISTORY_SEPARATOR. A title and its separator take at least two
# word pieces, so 256 titles fill any window up to 512 pieces; the cap keeps heavy users' strings
# short before the tokenizer truncates them.
HISTORY_SEPARATOR = "; "
MAX_HISTORY_TITLES = 256

# Column names tried in order, so loaders other than ml-100k's work unchanged.
_TITLE_KEYS = ("title", "movie_title", "name")
_YEAR_KEYS = ("year", "release_year")
_GENRE_KEYS = ("genres", "genre", "class", "categories")
_DESCRIPTION_KEYS = ("description", "text")
# A column holding each item's complete text, encoded verbatim instead of a sentence composed from
# the columns above (Amazon/UniSRec releases ship "title. categories. brand." as one text).
_FULL_TEXT_KEYS = ("item_text",)
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}
# ml-100k occupations that do not read as a noun after "A 24-year-old male ...": (noun, suffix).
_OCCUPATIONS = {
    "entertainment": ("person", "working in entertainment"),
    "healthcare": ("healthcare worker", ""),
    "marketing": ("person", "working in marketing"),
    "none": ("person", "with no occupation"),
    "other": ("person", ""),
}
_PERSONS = {"male": "man", "female": "woman"}
# Placeholders that carry no information (ml-100k item 267 is titled "unknown").
_UNKNOWN = {"unknown", "(no genres listed)", "n/a", "none"}
# "Kid in King Arthur's Court, A (1995)" -> "A Kid in King Arthur's Court (1995)".
_TRAILING_ARTICLE = re.compile(
    r"^(?P<rest>.+), (?P<article>The|A|An|Les|La|Le|Il|Das|Die|Der|El|Los|Las)"
    r"(?P<year> \(\d{4}\))?$")


def _text(value) -> str:
  """A metadata cell as stripped text; None, NaN and bytes handled."""
  if value is None:
    return ""
  if isinstance(value, bytes):
    value = value.decode("utf-8", "replace")
  if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
    return ""
  return str(value).strip()


def _number(value) -> int | None:
  """A positive whole number from an int, float or string cell (1995, 1995.0, "1995"), else None."""
  s = _text(value)
  try:
    x = float(s)
  except ValueError:
    return None
  return int(x) if math.isfinite(x) and x > 0 and x == int(x) else None


def _list(value) -> list[str]:
  """Genres from a list/array cell or a string joined by "|", "," or spaces (RecBole token_seq)."""
  if isinstance(value, (list, tuple, np.ndarray)):
    parts = [_text(v) for v in value]
  else:
    s = _text(value)
    sep = "|" if "|" in s else ("," if "," in s else None)
    parts = [p.strip() for p in s.split(sep)]
  return [p for p in parts if p and p.lower() not in _UNKNOWN]


def _title(value) -> str:
  """A title with a trailing article moved to the front; "" for placeholders."""
  title = _text(value)
  if title.lower() in _UNKNOWN:
    return ""
  m = _TRAILING_ARTICLE.match(title)
  if m:
    title = f"{m['article']} {m['rest']}{m['year'] or ''}"
  return title


def _column(meta: Mapping[str, np.ndarray] | None, keys: Sequence[str], n: int, kind: str):
  if not meta:
    return None
  for k in keys:
    if k in meta:
      col = meta[k]
      if len(col) != n:
        raise DataError(f"{kind} metadata column {k!r} has {len(col)} rows, expected {n}")
      return col
  return None


def _sentence(s: str) -> str:
  return s if s.endswith((".", "!", "?")) else s + "."


def item_text(title: str, year: int | None, genres: Sequence[str], description: str = "") -> str:
  """One item sentence, e.g. "Toy Story (1995). Genres: Animation, Children's, Comedy."."""
  parts = []
  if title:
    # ml-100k's u.item titles already end in "(1995)"; RecBole's keep the year apart.
    if year and not title.endswith(f"({year})"):
      title = f"{title} ({year})"
    parts.append(_sentence(title))
  elif year:
    parts.append(f"Released in {year}.")
  if genres:
    parts.append(f"Genres: {', '.join(genres)}.")
  if description:
    parts.append(_sentence(description))
  return " ".join(parts)


def item_texts(dataset: Dataset) -> tuple[list[str], np.ndarray]:
  """One text per item from `dataset.item_meta`: its complete text where the metadata has one
  (`item_text`, used verbatim), else a sentence of title, year, genres and description.

  Returns:
    texts: I strings in item-index order ("" for items without metadata).
    has_text: [I] bool, False where the text is empty.
  """
  n = dataset.num_items
  meta = dataset.item_meta
  full = _column(meta, _FULL_TEXT_KEYS, n, "item")
  titles = _column(meta, _TITLE_KEYS, n, "item")
  years = _column(meta, _YEAR_KEYS, n, "item")
  genres = _column(meta, _GENRE_KEYS, n, "item")
  descriptions = _column(meta, _DESCRIPTION_KEYS, n, "item")
  texts = [
      (_text(full[i]) if full is not None else "") or
      item_text(_title(titles[i]) if titles is not None else "",
                _number(years[i]) if years is not None else None,
                _list(genres[i]) if genres is not None else [],
                _text(descriptions[i]) if descriptions is not None else "")
      for i in range(n)
  ]
  return texts, np.array([bool(t) for t in texts], dtype=bool).reshape(n)


def item_titles(dataset: Dataset) -> list[str]:
  """A short name per item: "Toy Story (1995)" (title and year); "" for items without metadata.

  An item with no title column (e.g. a dataset whose items have one description text) falls back
  to its full sentence from `item_texts`, without the final full stop.
  """
  n = dataset.num_items
  titles = _column(dataset.item_meta, _TITLE_KEYS, n, "item")
  if titles is None:
    return [t[:-1] if t.endswith(".") else t for t in item_texts(dataset)[0]]
  years = _column(dataset.item_meta, _YEAR_KEYS, n, "item")
  out = []
  for i in range(n):
    title = _title(titles[i])
    year = _number(years[i]) if years is not None else None
    if title and year and not title.endswith(f"({year})"):
      title = f"{title} ({year})"
    out.append(title)
  return out


def user_history_texts(dataset: Dataset, train: Interactions, *,
                       max_titles: int = MAX_HISTORY_TITLES) -> tuple[list[str], np.ndarray]:
  """Each user's train history as one text: item titles, most recent first.

  Most recent first because the encoder truncates at the end (as sentence-transformers does): the
  titles that survive truncation are the user's latest, which say most about what comes next.
  Time is `train.timestamp` (ties and datasets without timestamps: a later row counts as later,
  as in `gnnrec_jax.splits`). An item seen several times is named once, at its latest
  interaction; items without a title are skipped. Only `train` is read, so valid/test items never
  appear.

  Args:
    dataset: the dataset (its `item_meta` gives the titles).
    train: the train interactions.
    max_titles: at most this many titles per user (the encoder truncates further).

  Returns:
    texts: U strings in user-index order, e.g. "Fargo (1996); Heat (1995)" ("" for users
      without a titled train item).
    has_text: [U] bool.
  """
  num_users, titles = dataset.num_users, item_titles(dataset)
  if len(train) and (train.user.min() < 0 or train.user.max() >= num_users):
    raise DataError(f"train user index out of range [0, {num_users}): "
                    f"{int(train.user.min())}..{int(train.user.max())}")
  if len(train) and (train.item.min() < 0 or train.item.max() >= len(titles)):
    raise DataError(f"train item index out of range [0, {len(titles)}): "
                    f"{int(train.item.min())}..{int(train.item.max())}")
  rows = np.arange(len(train), dtype=np.int64)
  when = train.timestamp if train.timestamp is not None else rows
  order = np.lexsort((-rows, -when, train.user))  # by user, then latest first
  bounds = np.searchsorted(train.user[order], np.arange(num_users + 1))  # [U + 1]
  texts = []
  for u in range(num_users):
    items = dict.fromkeys(train.item[order[bounds[u]:bounds[u + 1]]].tolist())  # latest first
    named = [titles[i] for i in items if titles[i]][:max_titles]
    texts.append(HISTORY_SEPARATOR.join(named))
  return texts, np.array([bool(t) for t in texts], dtype=bool).reshape(num_users)


def _article(next_word: str) -> str:
  # "An 18-year-old", "An 8-year-old", "An engineer"; "A 24-year-old", "A user".
  head = next_word.split("-")[0].lower()
  vowel_number = head.isdigit() and (head.startswith("8") or head in ("11", "18"))
  return "An" if vowel_number or head[:1] in tuple("aeio") else "A"


def user_text(age: int | None, gender: str, occupation: str) -> str:
  """One profile sentence, e.g. "A 24-year-old male technician."; "" when nothing is known."""
  g = _GENDERS.get(gender.lower(), gender.lower()) if gender else ""
  occ = occupation.lower()
  if age is None and not g and not occ:
    return ""
  noun, suffix = _OCCUPATIONS.get(occ, (occ, "")) if occ else ("person", "")
  words = [f"{age}-year-old"] if age is not None else []
  if noun == "person" and g in _PERSONS:
    words.append(_PERSONS[g])  # "a 53-year-old woman", not "a 53-year-old female person"
  else:
    words += [g, noun] if g else [noun]
  if suffix:
    words.append(suffix)
  return f"{_article(words[0])} {' '.join(words)}."


def user_profile_texts(dataset: Dataset) -> tuple[list[str], np.ndarray]:
  """One profile sentence per user from `dataset.user_meta` (age, gender, occupation).

  Returns:
    texts: U strings in user-index order ("" for users without metadata).
    has_text: [U] bool.
  """
  n = dataset.num_users
  meta = dataset.user_meta
  ages = _column(meta, ("age",), n, "user")
  genders = _column(meta, ("gender", "sex"), n, "user")
  occupations = _column(meta, ("occupation", "job"), n, "user")
  texts = [
      user_text(_number(ages[u]) if ages is not None else None,
                _text(genders[u]) if genders is not None else "",
                _text(occupations[u]) if occupations is not None else "")
      for u in range(n)
  ]
  return texts, np.array([bool(t) for t in texts], dtype=bool).reshape(n)


def _normalize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  norm = np.linalg.norm(x, axis=1, keepdims=True)  # [n, 1]
  has = norm[:, 0] > 1e-12
  return np.where(has[:, None], x / np.maximum(norm, 1e-12), 0.0).astype(np.float32), has


def user_history_vectors(item_vecs: np.ndarray, train: Interactions,
                         num_users: int) -> tuple[np.ndarray, np.ndarray]:
  """Each user's mean train-item text vector, re-L2-normalised.

  Repeated interactions count once per occurrence. Items without text have zero vectors and so do
  not change the direction; a user whose train items all lack text (or who has none) gets a zero
  vector and `has=False`.

  Args:
    item_vecs: [I, D] item text vectors (zero rows for items without text).
    train: the train interactions (item indices in [0, I)).
    num_users: U.

  Returns:
    vectors: [U, D] float32 unit vectors (zero rows where `has` is False).
    has: [U] bool.
  """
  item_vecs = np.asarray(item_vecs, np.float32)
  num_items = item_vecs.shape[0]
  if len(train) and (train.user.min() < 0 or train.user.max() >= num_users):
    raise DataError(f"train user index out of range [0, {num_users}): "
                    f"{int(train.user.min())}..{int(train.user.max())}")
  if len(train) and (train.item.min() < 0 or train.item.max() >= num_items):
    raise DataError(f"train item index out of range [0, {num_items}): "
                    f"{int(train.item.min())}..{int(train.item.max())}")
  # The mean and the sum point the same way, and the result is re-normalised: sum is enough.
  counts = sp.csr_matrix((np.ones(len(train), np.float32), (train.user, train.item)),
                         shape=(num_users, num_items))  # [U, I], duplicates summed
  return _normalize_rows(np.asarray(counts @ item_vecs))  # [U, D]


EncodeFn = Callable[[Sequence[str]], np.ndarray]


def _encode_fn(encoder_or_cache, progress: bool = True) -> EncodeFn:
  """Texts -> vectors: a `TextEncoder` or `EncoderSpec` goes through the disk cache."""
  from gnnrec_jax.text.cache import encode_cached
  from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder
  if isinstance(encoder_or_cache, (TextEncoder, EncoderSpec)):
    return lambda texts: encode_cached(encoder_or_cache, texts, progress=progress)
  if callable(encoder_or_cache):
    return encoder_or_cache
  raise ConfigError(f"expected a TextEncoder, EncoderSpec or a texts->vectors function, got "
                    f"{type(encoder_or_cache).__name__}")


def encode_present(encode: EncodeFn, texts: Sequence[str],
                   has_text: np.ndarray) -> np.ndarray:
  """Encodes only the non-empty texts; rows without text stay zero. Returns [n, D] float32."""
  idx = np.flatnonzero(has_text)
  vecs = np.asarray(encode([texts[i] for i in idx]), np.float32)  # [len(idx), D]
  out = np.zeros((len(texts), vecs.shape[1]), np.float32)
  out[idx] = vecs
  return out


def node_features(dataset: Dataset, train: Interactions, encoder_or_cache, *,
                  users: str = "history", progress: bool = True,
                  item_vectors: vectors_lib.Aligned | None = None,
                  user_vectors: vectors_lib.Aligned | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Text features of every graph node, users first, then items.

  Args:
    dataset: the dataset (its `item_meta` / `user_meta` give the texts).
    train: the train interactions (for `users="history"` / `"both"`).
    encoder_or_cache: a `TextEncoder` or `EncoderSpec` (vectors cached on disk, see
      `gnnrec_jax.text.cache`), or any function mapping a list of texts to [n, D] vectors.
    users: "history" (mean of the user's train-item vectors), "history_text" (the encoded text
      of the user's train-item titles, most recent first: `user_history_texts`), "profile" (the
      profile sentence),
      "both" (the re-normalised mean of the two unit vectors, keeping D the same as the other
      modes; a user with only one of them gets that one), or "none" (zero rows, has_text False).
    progress: show the encoder's progress bar when texts are not cached.
    item_vectors: the items' rows of a precomputed vectors file (`gnnrec_jax.text.vectors`)
      instead of encoding their texts; items without a row are items without text.
    user_vectors: the users' rows of a vectors file, instead of `users`' rule.

  Returns:
    features: [U + I, D] float32, unit rows or zero rows (a file's rows as written).
    has_text: [U + I] bool.
  """
  if users not in USER_MODES:
    raise ConfigError(f"unknown users mode {users!r}; expected one of {USER_MODES}")
  encode = _encode_fn(encoder_or_cache, progress)
  num_users, num_items = dataset.num_users, dataset.num_items
  if item_vectors is None:
    texts, item_has = item_texts(dataset)
    encoded = encode_present(encode, texts, item_has)  # [I, D]
    dim = encoded.shape[1]
  else:
    dim = item_vectors.source.dim
  # Filled in place: a vectors file's rows are copied once, into the table the run uses.
  features = np.zeros((num_users + num_items, dim), np.float32)  # [U + I, D]
  item_vecs = features[num_users:]  # [I, D], a view
  if item_vectors is None:
    item_vecs[...] = encoded
  else:
    item_has = vectors_lib.fill(item_vectors, item_vecs)
  if user_vectors is not None:
    vectors_lib.check_dim(user_vectors.source, dim, "user",
                          "the item vectors" if item_vectors is not None else
                          "the text model's item vectors")
    user_has = vectors_lib.fill(user_vectors, features[:num_users])
    return features, np.concatenate([user_has, item_has])
  user_vecs = np.zeros((num_users, dim), np.float32)  # [U, D]
  user_has = np.zeros(num_users, bool)
  if users in ("history", "both"):
    user_vecs, user_has = user_history_vectors(item_vecs, train, num_users)
  if users == "history_text":
    history, user_has = user_history_texts(dataset, train)
    user_vecs = _encoded_users(encode, history, user_has, dim, item_vectors)
  if users in ("profile", "both"):
    profiles, profile_has = user_profile_texts(dataset)
    profile_vecs = _encoded_users(encode, profiles, profile_has, dim, item_vectors)
    user_vecs, user_has = _normalize_rows(user_vecs + profile_vecs)
  features[:num_users] = user_vecs
  return features, np.concatenate([user_has, item_has])


def _encoded_users(encode: EncodeFn, texts: Sequence[str], has_text: np.ndarray, dim: int,
                   item_vectors: vectors_lib.Aligned | None) -> np.ndarray:
  """Users' texts encoded by the text model, which must give the items' dimension."""
  vecs = encode_present(encode, texts, has_text)  # [U, D']
  if vecs.shape[1] != dim and item_vectors is not None:
    raise DataError(f"{item_vectors.source.path}: item vectors are {dim}-d but the text model "
                    f"encodes the users' texts as {vecs.shape[1]}-d; give user vectors of the "
                    f"same encoder (user_vectors) or text_features=history")
  return vecs
