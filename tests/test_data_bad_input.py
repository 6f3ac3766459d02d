"""Bad input: each problem is a DataError naming file:line (or the id) and what was expected."""
import subprocess
import sys
from pathlib import Path

import pytest

from gnnrec_jax import cli
from gnnrec_jax.data import atomic, lastfm, lightgcn_format, movielens, tabular
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.errors import ConfigError, DataError

DATA = Path(__file__).parent / "data"
HEADER = "user_id\titem_id\trating\n"


def _lightgcn(tmp_path, train, test="0 1\n"):
  (tmp_path / "train.txt").write_text(train)
  (tmp_path / "test.txt").write_text(test)
  return tmp_path


def _lastfm(tmp_path, train, test="1\t10\t1\n"):
  (tmp_path / "data1.txt").write_text(train)
  (tmp_path / "test1.txt").write_text(test)
  return tmp_path


def _tsv(tmp_path, name, text):
  path = tmp_path / name
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  return path


# --- missing files and folders ------------------------------------------------------------------

def test_missing_folder(tmp_path):
  with pytest.raises(DataError, match=r"nope: LightGCN-format data folder .* not found"):
    lightgcn_format.load_lightgcn(tmp_path / "nope")
  with pytest.raises(DataError, match=r"nope: ml-100k folder not found"):
    movielens.load_ml100k(tmp_path / "nope")


def test_missing_file(tmp_path):
  (tmp_path / "train.txt").write_text("0 1\n")
  with pytest.raises(DataError, match=r"test\.txt: file not found"):
    lightgcn_format.load_lightgcn(tmp_path)
  with pytest.raises(DataError, match=r"absent\.tsv: file not found"):
    tabular.load_predefined(tmp_path / "absent.tsv")


def test_folder_that_is_neither_layout(tmp_path):
  with pytest.raises(DataError, match=r"expected a GroupLens ml-100k folder \(u\.data"):
    movielens.load_ml100k(tmp_path)


# --- malformed lines, column counts, non-numeric ids --------------------------------------------

def test_lightgcn_non_numeric_id_names_line(tmp_path):
  _lightgcn(tmp_path, "0 1 2\n1 3 x7\n")
  with pytest.raises(DataError, match=r"train\.txt:2: id 'x7' is not a non-negative integer"):
    lightgcn_format.load_lightgcn(tmp_path)


def test_lightgcn_negative_id(tmp_path):
  _lightgcn(tmp_path, "0 1\n\n2 -4\n")
  with pytest.raises(DataError, match=r"train\.txt:3: id '-4'"):
    lightgcn_format.load_lightgcn(tmp_path)


def test_lightgcn_float_id_and_crlf(tmp_path):
  _lightgcn(tmp_path, "0 1\r\n1 2\r\n\r\n2 3 1.5\r\n")
  with pytest.raises(DataError, match=r"train\.txt:4: id '1\.5' is not a non-negative integer"):
    lightgcn_format.load_lightgcn(tmp_path)
  _lightgcn(tmp_path, "0 1\r\n1 2 \t 0\r\n", "1 3\r\n")
  ds = lightgcn_format.load_lightgcn(tmp_path)  # CRLF and mixed whitespace are fine
  assert sorted(zip(ds.split.train.user.tolist(), ds.split.train.item.tolist())) == \
      [(0, 1), (1, 0), (1, 2)]


def test_lastfm_wrong_column_count(tmp_path):
  _lastfm(tmp_path, "1\t10\t5\n2\t11\n")
  with pytest.raises(DataError, match=r"data1\.txt:2: expected 3 columns .* found 2"):
    lastfm.load_lastfm(tmp_path)


def test_lastfm_non_numeric_id(tmp_path):
  _lastfm(tmp_path, "1\t10\t5\nuser2\t11\t3\n")
  with pytest.raises(DataError, match=r"data1\.txt:2: user id 'user2' is not a non-negative"):
    lastfm.load_lastfm(tmp_path)


def test_grouplens_wrong_column_count(tmp_path):
  for f in ("u.item", "u.user"):
    (tmp_path / f).write_bytes((DATA / "ml100k_grouplens" / f).read_bytes())
  (tmp_path / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\n")
  with pytest.raises(DataError, match=r"u\.data:2: expected 4 columns"):
    movielens.load_ml100k(tmp_path)


def test_atomic_bad_header(tmp_path):
  _tsv(tmp_path, "x.inter", "user_id:token\titem_id:tokn\n1\t2\n")
  with pytest.raises(DataError, match=r"x\.inter:1: header field 'item_id:tokn' should be NAME:TYPE"):
    atomic.load_atomic(tmp_path, "x")


def test_atomic_missing_id_column(tmp_path):
  _tsv(tmp_path, "x.inter", "uid:token\titem_id:token\n1\t2\n")
  with pytest.raises(DataError, match=r"x\.inter:1: no column 'user_id'"):
    atomic.load_atomic(tmp_path, "x")


def test_atomic_duplicate_metadata_id_names_both_lines(tmp_path):
  _tsv(tmp_path, "x.inter", "user_id:token\titem_id:token\n1\ta\n")
  _tsv(tmp_path, "x.item", "item_id:token\ttitle:token\na\tA\nb\tB\na\tC\n")
  with pytest.raises(DataError, match=r"x\.item:4: id 'a' already listed at line 2"):
    atomic.load_atomic(tmp_path, "x")


def test_fractional_timestamps_keep_their_order(tmp_path):
  # Truncating to whole seconds would tie 5.7 and 5.2, and the tie (broken by row order) would
  # make the earlier event 5.2 the user's last one.
  _tsv(tmp_path, "x.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
       "u\ta\t1.0\nu\tb\t5.7\nu\tc\t5.2\nu\td\t1.0\n")
  with pytest.warns(DataWarning, match="rank order"):
    ds = atomic.load_atomic(tmp_path, "x")
  assert ds.interactions.timestamp.tolist() == [0, 2, 1, 0]
  from gnnrec_jax.data.splits import split_leave_one_out
  s = split_leave_one_out(ds.interactions)
  assert ds.items.tokens[int(s.test.item[0])] == "b"
  assert ds.items.tokens[int(s.valid.item[0])] == "c"


def test_missing_timestamp_names_line(tmp_path):
  _tsv(tmp_path, "x.inter", "user_id:token\titem_id:token\ttimestamp:float\nu\ta\t1\nu\tb\t\n")
  with pytest.raises(DataError, match=r"x\.inter:3: timestamp is missing"):
    atomic.load_atomic(tmp_path, "x")
  train = _tsv(tmp_path, "train.tsv", "user_id\titem_id\ttimestamp\na\tx\t1\nb\ty\tinf\n")
  with pytest.raises(DataError, match=r"train\.tsv:3: timestamp is missing or not a finite"):
    tabular.load_predefined(train)


def test_predefined_row_with_wrong_column_count(tmp_path):
  train = _tsv(tmp_path, "train.tsv", HEADER + "a\tx\t1\nb\ty\n")
  with pytest.raises(DataError, match=r"train\.tsv:3: expected 3 columns"):
    tabular.load_predefined(train)


def test_predefined_header_without_ids(tmp_path):
  train = _tsv(tmp_path, "train.tsv", "user\titem\na\tx\n")
  with pytest.raises(DataError, match=r"train\.tsv:1: header .* must name user_id and item_id"):
    tabular.load_predefined(train)


def test_csv_unknown_column(tmp_path):
  f = _tsv(tmp_path, "r.csv", "uid,iid\na,b\n")
  with pytest.raises(DataError, match=r"r\.csv:1: no column 'item' for item"):
    tabular.load_csv(f, columns="user=uid,item=item")
  with pytest.raises(ConfigError, match="should be ROLE=COLUMN"):
    tabular.load_csv(f, columns="user=uid,iid")


# --- empty files --------------------------------------------------------------------------------

def test_empty_files(tmp_path):
  _lightgcn(tmp_path, "")
  with pytest.raises(DataError, match=r"train\.txt: file is empty"):
    lightgcn_format.load_lightgcn(tmp_path)
  _lightgcn(tmp_path, "0\n1\n")  # users without items: nothing to train on
  with pytest.raises(DataError, match=r"train\.txt: no interactions"):
    lightgcn_format.load_lightgcn(tmp_path)
  train = _tsv(tmp_path, "train.tsv", HEADER)
  with pytest.raises(DataError, match=r"train\.tsv: no interactions"):
    tabular.load_predefined(train)
  _tsv(tmp_path, "e.inter", "  \n\n")
  with pytest.raises(DataError, match=r"e\.inter: atomic file is empty"):
    atomic.load_atomic(tmp_path, "e")


# --- weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["nan", "inf", "-3", "-inf"])
def test_invalid_weights(tmp_path, bad):
  _lastfm(tmp_path, f"1\t10\t5\n2\t11\t{bad}\n")
  with pytest.raises(DataError, match=r"data1\.txt:2: weight .* is invalid \(expected a finite "
                                      r"number >= 0\)"):
    lastfm.load_lastfm(tmp_path)


def test_non_numeric_weight(tmp_path):
  train = _tsv(tmp_path, "train.tsv", HEADER + "a\tx\t4\nb\ty\tfive\n")
  with pytest.raises(DataError, match=r"train\.tsv:3: weight 'five' is not a number"):
    tabular.load_predefined(train)


def test_zero_weight_is_allowed(tmp_path):
  ds = lastfm.load_lastfm(_lastfm(tmp_path, "1\t10\t0\n2\t11\t2\n", "1\t11\t1\n"))
  assert ds.split.train.weight.tolist() == [0.0, 2.0]


# --- duplicates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, weights, times", [
    ("max", [5.0, 1.0], [30, 5]),    # the largest weight, the pair's latest time
    ("sum", [11.0, 1.0], [30, 5]),   # 4 + 2 + 5
    ("last", [2.0, 1.0], [30, 5]),   # the row at t=30 (not the file's last row, t=20)
])
def test_repeated_pairs_are_combined_by_the_rule_with_a_count(tmp_path, rule, weights, times):
  train = _tsv(tmp_path, "train.tsv", "user_id\titem_id\trating\ttimestamp\n"
               "a\tx\t4\t10\nb\tx\t1\t5\na\tx\t2\t30\na\tx\t5\t20\n")
  with pytest.warns(DataWarning, match=rf"train\.tsv: 2 rows repeat a user-item pair \(1 pair; "
                                       rf"first repeat at .*train\.tsv:4\); combined with "
                                       rf"duplicates={rule}"):
    ds = tabular.load_predefined(train, duplicates=rule)
  assert [ds.users.tokens[u] for u in ds.split.train.user] == ["a", "b"]  # first-seen order
  assert ds.split.train.weight.tolist() == weights
  assert ds.split.train.timestamp.tolist() == times


def test_lightgcn_duplicates(tmp_path):
  _lightgcn(tmp_path, "0 1 1 2\n0 2\n", "0 3\n")
  with pytest.warns(DataWarning, match="2 rows repeat a user-item pair"):
    ds = lightgcn_format.load_lightgcn(tmp_path)
  assert sorted(ds.split.train.item.tolist()) == [1, 2]
  assert ds.split.train.weight is None  # max keeps unweighted data unweighted
  with pytest.warns(DataWarning, match="duplicates=sum"):
    ds = lightgcn_format.load_lightgcn(tmp_path, duplicates="sum")
  assert ds.split.train.weight.tolist() == [2.0, 2.0]  # repeats become counts


def test_test_pairs_in_train_are_dropped(tmp_path):
  _lightgcn(tmp_path, "0 1 2\n", "0 2 3\n")
  with pytest.warns(DataWarning, match=r"dropped 1 test rows whose user-item pair is also in train"):
    ds = lightgcn_format.load_lightgcn(tmp_path)
  assert ds.split.test.item.tolist() == [3]


# --- unknown ids in valid/test ------------------------------------------------------------------

def test_unknown_ids_in_valid_dropped_with_count(tmp_path):
  train = _tsv(tmp_path, "train.tsv", HEADER + "a\tx\t4\nb\ty\t1\n")
  valid = _tsv(tmp_path, "valid.tsv", HEADER + "a\ty\t3\nzed\tx\t2\nb\tnew\t1\nzed\tnew\t1\n")
  with pytest.warns(DataWarning, match=r"valid\.tsv: dropped 3 valid rows .* \(1 unknown users, "
                                       r"1 unknown items, e\.g\. user 'zed', item 'new'\)"):
    ds = tabular.load_predefined(train, valid)
  assert ds.split.sizes() == {"train": 2, "valid": 1, "test": 0}
  assert ds.num_users == 2 and ds.num_items == 2


def test_predefined_parts_must_share_columns(tmp_path):
  train = _tsv(tmp_path, "train.tsv", HEADER + "a\tx\t4\n")
  test = _tsv(tmp_path, "test.tsv", "user_id\titem_id\na\tx\n")
  with pytest.raises(DataError, match=r"test\.tsv: expected the same optional columns"):
    tabular.load_predefined(train, test=test)


# --- encodings ----------------------------------------------------------------------------------

def test_wrong_encoding_names_file_and_line(tmp_path):
  train = _tsv(tmp_path, "train.tsv", HEADER.encode() + b"a\tx\t4\nb\tAmeli\xe9\t1\n")
  with pytest.raises(DataError, match=r"train\.tsv:3: byte 0xe9 is not valid utf-8"):
    tabular.load_predefined(train)
  _tsv(tmp_path, "m.inter", b"user_id:token\titem_id:token\n1\t\xff\n")
  with pytest.raises(DataError, match=r"m\.inter:2: byte 0xff is not valid utf-8"):
    atomic.load_atomic(tmp_path, "m")


# --- the command line never shows a traceback ---------------------------------------------------

def _cli(capsys, *argv):
  code = cli.main(["data", *map(str, argv)])
  err = capsys.readouterr().err
  assert "Traceback" not in err
  return code, err


def test_cli_bad_data_is_one_line_and_code_2(tmp_path, capsys):
  _lightgcn(tmp_path, "0 1\n1 two\n")
  code, err = _cli(capsys, "--dataset", "lightgcn", "--data-dir", tmp_path)
  assert code == 2
  assert err.startswith("gnnrec-jax data: error: ") and err.count("\n") == 1
  assert "train.txt:2: id 'two'" in err


def test_cli_config_errors(tmp_path, capsys):
  code, err = _cli(capsys, "--dataset", "lastfm", "--data-dir", DATA / "lastfm",
                   "--columns", "user=u,item=i")
  assert code == 2 and "--columns is not used by --dataset lastfm" in err
  code, err = _cli(capsys, "--dataset", "lightgcn", "--data-dir", DATA / "lightgcn",
                   "--split", "loo")
  assert code == 2 and "needs timestamps" in err
  code, err = _cli(capsys, "--dataset", "ml-100k", "--data-dir", DATA / "ml100k_grouplens",
                   "--split", "predefined")
  assert code == 2 and "has no predefined split" in err
  code, err = _cli(capsys, "--dataset", "csv", "--data-dir", DATA / "ratings.csv")
  assert code == 2 and "needs --columns" in err


def test_cli_warnings_are_one_line(tmp_path, capsys):
  assert cli.main(["data", "--dataset", "lastfm", "--data-dir", str(DATA / "lastfm")]) == 0
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith("gnnrec-jax data: warning: ") and "dropped 2 test rows" in err[0]
  assert len(err) == 2  # test rows, social pairs


def test_cli_predefined_split_flags(capsys):
  p = DATA / "predefined"
  code = cli.main(["data", "--train", str(p / "train.tsv"), "--valid", str(p / "valid.tsv"),
                   "--test", str(p / "test.tsv"), "--item-meta", str(p / "items.tsv")])
  out = capsys.readouterr().out
  assert code == 0 and "3 users, 4 items, 7 interactions" in out  # no user meta: u4 absent


def test_subprocess_no_traceback(tmp_path):
  _lastfm(tmp_path, "1\t10\t5\n2\t11\tnan\n")
  proc = subprocess.run([sys.executable, "-m", "gnnrec_jax", "data", "--dataset", "lastfm",
                         "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().startswith("gnnrec-jax data: error: ")
  assert "data1.txt:2: weight nan is invalid" in proc.stderr
  assert proc.stdout == ""
