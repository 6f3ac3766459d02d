"""`--dataset scientific`: the UniSRec/VQ-Rec release on a hand-written fixture (tests/data/scientific)
and, when present, on the shipped files (../shared/data/scientific)."""
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from gnnrec_jax.data import registry, scientific
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.errors import DataError
from gnnrec_jax.text import node_texts

DATA = Path(__file__).parent / "data" / "scientific"
SHIPPED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "scientific"


def _load(path=DATA, **kw):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", DataWarning)
    ds = scientific.load_scientific(path, **kw)
  return ds, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def _rows(inter, ds):
  return sorted((ds.users.tokens[u], ds.items.tokens[i], int(t))
                for u, i, t in zip(inter.user, inter.item, inter.timestamp))


def test_fixture_by_hand():
  ds, warned = _load()
  assert ds.name == "scientific"
  # item2index lists A3 first: the vocabulary follows the indices, not the file order.
  assert ds.items.tokens == ("A0", "A1", "A2", "A3", "A4")
  assert ds.users.tokens == ("RA", "RB", "RC")
  s = ds.split
  # RA's rows, walked from the last listed: A0 A1 | A2 | A1 | A3; A1 is dated at position 3.
  assert _rows(s.train, ds) == [("RA", "A0", 0), ("RA", "A1", 3), ("RA", "A2", 2), ("RA", "A3", 4),
                                ("RB", "A2", 0), ("RB", "A3", 1),
                                ("RC", "A0", 1), ("RC", "A1", 2), ("RC", "A4", 0)]
  assert s.train.weight is None
  # RC's valid A1 repeats a train item; RA's test A2 repeats a train item; RB's test A0 is its
  # valid item: all three are masked at ranking, so they are dropped.
  assert _rows(s.valid, ds) == [("RA", "A4", 5), ("RB", "A0", 2)]
  assert _rows(s.test, ds) == [("RC", "A2", 3)]
  assert len(ds.interactions) == 9 + 2 + 1
  assert any("1 row repeats a user-item pair" in w for w in warned)
  assert any("valid.inter: dropped 1 rows whose target is one of the user's train items" in w
             for w in warned)
  assert any("test.inter: dropped 1 rows whose target is one of the user's train items" in w
             for w in warned)
  assert any("test.inter: dropped 1 rows whose target is the user's valid item" in w
             for w in warned)
  assert any("skipped 1 texts of items not in the item index" in w and "'ZZ'" in w
             for w in warned)
  assert any("1 of 5 items have no text" in w for w in warned)


def test_text_is_used_whole():
  ds, _ = _load()
  full = "PORTER-CABLE 80 Grit Sanding Roll. Industrial & Scientific Abrasive & Finishing " \
         "Products Sanding Rolls. PORTER-CABLE."
  assert ds.item_meta["item_text"][0] == full
  assert ds.item_meta["title"].tolist() == ["PORTER-CABLE 80 Grit Sanding Roll",
                                            "PORTER-CABLE 120 Grit Sanding Roll",
                                            "Gorilla Glue, 8 ounce", "Lab Notebook. Office. Acme",
                                            ""]
  texts, has = node_texts.item_texts(ds)
  # The encoder reads the whole text (title, categories, brand), not a sentence built from the
  # title column.
  assert texts[0] == full and texts[3] == "Lab Notebook. Office. Acme."
  assert texts[4] == "" and has.tolist() == [True, True, True, True, False]
  assert ds.item_title(1) == "PORTER-CABLE 120 Grit Sanding Roll"


def test_duplicates_sum_counts_repeat_purchases():
  ds, _ = _load(duplicates="sum")
  s = ds.split
  w = {(ds.users.tokens[u], ds.items.tokens[i]): float(x)
       for u, i, x in zip(s.train.user, s.train.item, s.train.weight)}
  assert w[("RA", "A1")] == 2.0 and w[("RA", "A0")] == 1.0


@pytest.mark.filterwarnings("ignore::gnnrec_jax.data.checks.DataWarning")
def test_registry_and_default_folder(monkeypatch, tmp_path):
  ds = registry.load_dataset("scientific", data_dir=DATA)
  assert ds.num_items == 5
  shutil.copytree(DATA, tmp_path / "shared" / "data" / "scientific")
  (tmp_path / "repo").mkdir()
  monkeypatch.chdir(tmp_path / "repo")
  assert registry.load_dataset("scientific").num_users == 3  # ../shared/data/scientific


@pytest.mark.parametrize("file,old,new,message", [
    ("Scientific.train.inter", "2\t4\t0", "2\t4\t9", "train.inter:8: item index 9 is beyond"),
    ("Scientific.valid.inter", "1\t2 3\t0", "1\t2 7\t0",
     "valid.inter:3: history item index 7 is beyond"),
    ("Scientific.test.inter", "2\t4 0 1 1\t2", "5\t4 0 1 1\t2", "test.inter:4: user index 5"),
    ("Scientific.item2index", "A4\t4", "A4\t3", "item2index:5: index 3 repeats"),
    ("Scientific.user2index", "RC\t2", "RB\t2", "user2index:3: id 'RB' already listed at line 2"),
    ("Scientific.train.inter", "item_id_list:token_seq", "item_id_list:token",
     "field item_id_list is token, expected token_seq"),
])
def test_errors_name_file_and_line(tmp_path, file, old, new, message):
  d = tmp_path / "sci"
  shutil.copytree(DATA, d)
  text = (d / file).read_text()
  assert old in text
  (d / file).write_text(text.replace(old, new))
  with pytest.raises(DataError, match=message.replace(".", r"\.")):
    _load(d)


def test_missing_file(tmp_path):
  d = tmp_path / "sci"
  shutil.copytree(DATA, d)
  (d / "Scientific.text").unlink()
  with pytest.raises(DataError, match="Scientific.text: atomic file not found"):
    _load(d)


@pytest.mark.skipif(not (SHIPPED / "Scientific.train.inter").exists(),
                    reason="the shipped release is not beside the repository")
def test_shipped_release_counts():
  ds, warned = _load(SHIPPED)
  s = ds.split
  assert (ds.num_users, ds.num_items) == (8442, 4385)
  assert len(s.train) == 42_356  # distinct (user, item) pairs of the train rows
  # 54 valid and 37 test targets repeat a train item, 13 more test targets the valid item.
  assert (len(s.valid), len(s.test)) == (8442 - 54, 8442 - 37 - 13)
  assert sum("dropped" in w for w in warned) == 3
  assert (ds.item_meta["item_text"] != "").all()
  assert np.unique(s.valid.user).size == len(s.valid)
