"""Silent misreads (issue 16, items 3-6), one class per section, several inputs each, through the
command line where a user meets them: each ends in one error line (exit 2) or a counted warning
(exit 0), never a traceback.

  3. values beyond the type they are stored in (weights float32, timestamps int64, ids int32/64)
  4. malformed CSV quoting
  5. files that are not regular files, and files beyond the size limit
  6. rows made only of separators or whitespace, and ids of absurd length
"""
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gnnrec_jax import cli
from gnnrec_jax.data import files, tabular

DATA = Path(__file__).parent / "data"
FAST = ["--config", "test", "--set", "epochs=1", "--no-progress"]


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


def _error(cmd, *argv):
  """The one stderr line of a failing command (exit 2)."""
  code, out, err = _main(cmd, *argv)
  lines = err.splitlines()
  assert code == 2 and len(lines) == 1, err
  assert lines[0].startswith(f"gnnrec-jax {cmd}: error: "), err
  return lines[0]


def _warnings(*argv):
  """(stats JSON, warning lines) of a successful `gnnrec-jax data`."""
  code, out, err = _main("data", *argv)
  assert code == 0, err
  lines = err.splitlines()
  assert all(line.startswith("gnnrec-jax data: warning: ") for line in lines), err
  return json.loads(out.splitlines()[-1]), lines


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def _csv_args(path, columns="user=u,item=i,weight=w"):
  return ["--dataset", "csv", "--data-dir", path, "--columns", columns]


def _lightgcn_dir(d, train, test="0 1\n"):
  _write(d / "train.txt", train)
  _write(d / "test.txt", test)
  return ["--dataset", "lightgcn", "--data-dir", d]


def _lastfm_dir(d, train, test="1\t10\t1\n"):
  _write(d / "data1.txt", train)
  _write(d / "test1.txt", test)
  return ["--dataset", "lastfm", "--data-dir", d]


def _atomic_dir(d, inter):
  _write(d / "x.inter", inter)
  return ["--dataset", "atomic", "--data-dir", d, "--name", "x"]


def _predefined(d, train):
  return ["--train", _write(d / "train.tsv", train)]


def _grouplens_dir(d, u_data=None, u_user=None):
  for f in ("u.item", "u.user", "u.data"):
    shutil.copy(DATA / "ml100k_grouplens" / f, d / f)
  if u_data is not None:
    _write(d / "u.data", u_data)
  if u_user is not None:
    _write(d / "u.user", u_user)
  return ["--dataset", "ml-100k", "--data-dir", d]


# --- 3. values beyond the range of their stored type ---------------------------------------------

@pytest.mark.parametrize("loader, value, why", [
    ("csv", "1e39", r"r\.csv:3: weight 1e\+39 is beyond float32's range .* would become inf"),
    ("csv", "1e-50", r"r\.csv:3: weight 1e-50 is below float32's smallest .* would become 0"),
    ("csv", "1e400", r"r\.csv:3: weight '1e400' is beyond float64's range"),
    ("lastfm", "3.5e38", r"data1\.txt:2: weight 3\.5e\+38 is beyond float32's range"),
    ("atomic", "1e39", r"x\.inter:3: weight 1e\+39 is beyond float32's range"),
    ("predefined", "1e300", r"train\.tsv:3: weight 1e\+300 is beyond float32's range"),
    ("ml-100k", "4e38", r"u\.data:2: weight 4e\+38 is beyond float32's range"),
])
def test_weights_beyond_float32(tmp_path, loader, value, why):
  if loader == "csv":
    args = _csv_args(_write(tmp_path / "r.csv", f"u,i,w\na,x,1\nb,y,{value}\n"))
  elif loader == "lastfm":
    args = _lastfm_dir(tmp_path, f"1\t10\t5\n2\t11\t{value}\n")
  elif loader == "atomic":
    args = _atomic_dir(tmp_path, f"user_id:token\titem_id:token\trating:float\na\tx\t1\n"
                                 f"b\ty\t{value}\n")
  elif loader == "predefined":
    args = _predefined(tmp_path, f"user_id\titem_id\tweight\na\tx\t1\nb\ty\t{value}\n")
  else:
    args = _grouplens_dir(tmp_path, u_data=f"1\t1\t5\t874965758\n1\t2\t{value}\t876893171\n")
  line = _error("data", *args)
  assert re.search(why, line), line


def test_weights_beyond_float32_stop_train_before_training(tmp_path):
  f = _write(tmp_path / "r.csv", "u,i,w\na,x,1\nb,y,1e39\n")
  line = _error("train", *_csv_args(f), *FAST, "--workdir", tmp_path / "w")
  assert "r.csv:3: weight 1e+39 is beyond float32's range" in line
  assert not (tmp_path / "w" / "history.jsonl").exists()


def test_summed_weights_beyond_float32(tmp_path):
  f = _write(tmp_path / "r.csv", "u,i,w\na,x,3e38\nb,y,1\na,x,3e38\n")
  line = _error("data", *_csv_args(f), "--set", "duplicates=sum")
  assert "r.csv:2: the weights of this user-item pair sum to 6e+38, beyond float32's range" in line


@pytest.mark.parametrize("loader, value, why", [
    ("csv", "99999999999999999999", r"r\.csv:3: timestamp '99999999999999999999' is beyond int64"),
    ("csv", "1e19", r"r\.csv:3: timestamp 1e\+19 is beyond int64"),
    ("atomic", "-9.3e18", r"x\.inter:3: timestamp -9\.3e\+18 is beyond int64"),
    ("atomic", "9223372036854775808", r"x\.inter:3: timestamp '9223372036854775808' is beyond"),
    ("predefined", "123456789012345678901234", r"train\.tsv:3: timestamp '1234567890123"),
    ("ml-100k", "99999999999999999999", r"u\.data:2: timestamp '99999999999999999999' is beyond"),
])
def test_timestamps_beyond_int64_are_errors_not_wrapped(tmp_path, loader, value, why):
  if loader == "csv":
    args = _csv_args(_write(tmp_path / "r.csv", f"u,i,t\na,x,1\nb,y,{value}\n"),
                     "user=u,item=i,timestamp=t")
  elif loader == "atomic":
    args = _atomic_dir(tmp_path, f"user_id:token\titem_id:token\ttimestamp:float\na\tx\t1\n"
                                 f"b\ty\t{value}\n")
  elif loader == "predefined":
    args = _predefined(tmp_path, f"user_id\titem_id\ttimestamp\na\tx\t1\nb\ty\t{value}\n")
  else:
    args = _grouplens_dir(tmp_path, u_data=f"1\t1\t5\t874965758\n1\t2\t3\t{value}\n")
  line = _error("data", *args)
  assert re.search(why, line), line


def test_integer_timestamps_are_exact_beyond_float64_precision(tmp_path):
  # Through float64 both become 1.7e18 (a tie, broken by row order): x would look newest.
  f = _write(tmp_path / "r.csv", "u,i,t\na,x,1700000000000000000\na,y,1700000000000000001\n"
                                 "a,z,1699999999999999999\n")
  stats, warned = _warnings(*_csv_args(f, "user=u,item=i,timestamp=t"), "--split", "loo")
  assert not warned
  assert stats["timestamps"] == {"min": 1699999999999999999, "max": 1700000000000000001}
  ds = tabular.load_csv(f, columns="user=u,item=i,timestamp=t")
  from gnnrec_jax.data.splits import split_leave_one_out
  s = split_leave_one_out(ds.interactions)
  assert ds.items.tokens[int(s.test.item[0])] == "y"
  assert ds.items.tokens[int(s.valid.item[0])] == "x"


@pytest.mark.parametrize("train, why", [
    ("0 1\n1 99999999999999999999\n",  # numpy clips this to int64's maximum
     r"train\.txt:2: id '99999999999999999999' is beyond int32"),
    ("0 1\n3000000000 2\n", r"train\.txt:2: id '3000000000' is beyond int32"),
    ("0 1\n1 2\n2 50000000\n", r"train\.txt:3: item id 50000000 makes a catalogue of 50,000,001 "
                               r"items for 3 distinct ids"),
    ("0 1\n20000000 2\n", r"train\.txt:2: user id 20000000 makes a catalogue of 20,000,001 users"),
])
def test_lightgcn_ids_beyond_their_type_or_far_beyond_the_data(tmp_path, train, why):
  line = _error("data", *_lightgcn_dir(tmp_path, train))
  assert re.search(why, line), line


def test_lastfm_ids_beyond_int64(tmp_path):
  line = _error("data", *_lastfm_dir(tmp_path, "1\t10\t5\n99999999999999999999\t11\t3\n"))
  assert "data1.txt:2: user id '99999999999999999999' is beyond int64" in line
  line = _error("data", *_lastfm_dir(tmp_path, "1\t10\t5\n2\t" + "9" * 5000 + "\t3\n"))
  assert "data1.txt:2: item id '99999" in line and "(5,000 characters) is beyond int64" in line


# --- 4. malformed CSV quoting -----------------------------------------------------------------

@pytest.mark.parametrize("body, why", [
    # The quote opened on line 3 never closes: rows 4-5 would become part of one title.
    ('a,"Dune,5\nb,Solaris,4\nc,Ubik,3\n',
     r"r\.csv:3: malformed quoting: a quoted field opened on this line never closes"),
    # ... or closes on a later line, swallowing the rows in between.
    ('a,"Dune,5\nb,Solaris,4\nc,Ubik",3\nd,Dune,2\n',
     r"r\.csv:3: malformed quoting: a quoted field opened on this line runs on to line 5"),
    # Text after the closing quote (an undoubled quote inside a quoted field).
    ('a,"The "Best" one",5\n', r"r\.csv:3: malformed quoting: ',' expected after '\"' \(on line "
                               r"3\)"),
    ('a,Dune,5\nb,"Solaris\n', r"r\.csv:4: malformed quoting: .* never closes"),
])
def test_malformed_quoting_names_the_line(tmp_path, body, why):
  f = _write(tmp_path / "r.csv", "u,i,w\nz,Dune,1\n" + body)
  line = _error("data", *_csv_args(f))
  assert re.search(why, line), line


def test_malformed_quoting_with_another_separator_and_in_train(tmp_path):
  f = _write(tmp_path / "r.csv", 'u;i;w\na;"Dune;5\nb;Ubik;4\n')
  line = _error("data", *_csv_args(f), "--sep", ";")
  assert "r.csv:2: malformed quoting" in line
  line = _error("train", *_csv_args(f), "--sep", ";", *FAST, "--workdir", tmp_path / "w")
  assert "r.csv:2: malformed quoting" in line


def test_well_formed_quoting_still_loads(tmp_path):
  f = _write(tmp_path / "r.csv", 'u,i,w\na,"Dune, Messiah",5\nb,"The ""Best"" one",4\n'
                                 'c,plain,3\n')
  ds = tabular.load_csv(f, columns="user=u,item=i,weight=w")
  assert ds.items.tokens == ("Dune, Messiah", 'The "Best" one', "plain")
  assert ds.interactions.weight.tolist() == [5.0, 4.0, 3.0]


# --- 5. special files and the size limit ---------------------------------------------------------

@contextlib.contextmanager
def _deadline(seconds=20):
  """Fails the test instead of hanging when something blocks (e.g. opening a FIFO)."""
  def expire(*_):
    raise TimeoutError(f"blocked for {seconds} s")
  old = signal.signal(signal.SIGALRM, expire)
  signal.alarm(seconds)
  try:
    yield
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_fifos_are_refused_not_read(tmp_path):
  fifo = tmp_path / "pipe.csv"
  os.mkfifo(fifo)
  cases = [
      (_csv_args(fifo), "pipe.csv: a named pipe (FIFO), not a regular file"),
      (["--train", fifo], "pipe.csv: a named pipe (FIFO), not a regular file"),
  ]
  d = tmp_path / "lgcn"
  _write(d / "test.txt", "0 1\n")
  os.mkfifo(d / "train.txt")
  cases.append((["--dataset", "lightgcn", "--data-dir", d], "train.txt: a named pipe"))
  a = tmp_path / "atomic"
  _write(a / "x.inter", "user_id:token\titem_id:token\n1\t2\n")
  os.mkfifo(a / "x.item")  # an optional file: once silently skipped, now refused by name
  cases.append((["--dataset", "atomic", "--data-dir", a, "--name", "x"], "x.item: a named pipe"))
  lf = tmp_path / "lastfm"
  _lastfm_dir(lf, "1\t10\t5\n2\t11\t3\n", "1\t11\t1\n")
  os.mkfifo(lf / "trustnetwork.txt")
  cases.append((["--dataset", "lastfm", "--data-dir", lf], "trustnetwork.txt: a named pipe"))
  for args, want in cases:
    with _deadline():
      line = _error("data", *args)
    assert want in line and "pipes and devices are refused" in line, line


def test_devices_are_refused_in_a_memory_capped_process(tmp_path):
  """/dev/zero never ends: read, it would exhaust memory (here capped at 2 GiB, so a regression
  fails instead of hurting the machine)."""
  d = tmp_path / "lgcn"
  _write(d / "test.txt", "0 1\n")
  (d / "train.txt").symlink_to("/dev/zero")

  # The cap is set by the child itself (a preexec_fn would run Python after fork() in this
  # multithreaded process).
  capped = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
            " sys.argv[0] = 'gnnrec-jax'; runpy.run_module('gnnrec_jax', run_name='__main__')")
  env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
  for args, want in ((_csv_args("/dev/zero"), "/dev/zero: a character device, not a regular"),
                     (["--dataset", "lightgcn", "--data-dir", d],
                      "train.txt: a character device, not a regular file")):
    proc = subprocess.run([sys.executable, "-c", capped, "data", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert want in proc.stderr


def test_files_beyond_the_size_limit_unless_asked(tmp_path, monkeypatch):
  f = _write(tmp_path / "r.csv", "u,i,w\n" + "".join(f"u{k},i{k % 7},1\n" for k in range(40)))
  line = _error("data", *_csv_args(f), "--max-file-size", "100")
  assert f"{f}: {f.stat().st_size} bytes is beyond the 100 bytes limit on input files" in line
  assert "--max-file-size SIZE or GNNREC_JAX_MAX_FILE_SIZE=SIZE" in line
  monkeypatch.setenv("GNNREC_JAX_MAX_FILE_SIZE", "0.1K")
  assert "beyond the 102 bytes limit" in _error("data", *_csv_args(f))
  line = _error("train", *_csv_args(f), *FAST, "--workdir", tmp_path / "w")
  assert "beyond the 102 bytes limit" in line
  stats, _ = _warnings(*_csv_args(f), "--max-file-size", "1M")  # asked: loads
  assert stats["interactions"] == 40
  monkeypatch.setenv("GNNREC_JAX_MAX_FILE_SIZE", "none")
  assert _warnings(*_csv_args(f))[0]["interactions"] == 40
  assert "is not a size" in _error("data", *_csv_args(f), "--max-file-size", "lots")
  for tiny in ("0.5", "0.0001K"):   # would have been a 0-byte limit, while "0" means none
    monkeypatch.setenv("GNNREC_JAX_MAX_FILE_SIZE", tiny)
    assert f"$GNNREC_JAX_MAX_FILE_SIZE: '{tiny}' is under one byte" in _error("data", *_csv_args(f))
  assert "'0.5' is under one byte" in _error("data", *_csv_args(f), "--max-file-size", "0.5")
  monkeypatch.delenv("GNNREC_JAX_MAX_FILE_SIZE")
  assert files.max_file_size() == 1 << 30  # the stated default


# --- 6. rows of separators or whitespace; ids of absurd length ----------------------------------

@pytest.mark.parametrize("loader, first, count", [
    ("csv", 3, 3),         # ",,", "  ", " , "
    ("tsv", 3, 2),         # "\t\t", " \t "
    ("lightgcn", 2, 2),    # "   ", "\t"
    ("atomic", 3, 1),
    ("lastfm", 2, 1),
    ("ml-100k", 3, 1),     # "||||" in u.user: once a user with an empty id
])
def test_blank_rows_are_skipped_with_a_count(tmp_path, loader, first, count):
  if loader == "csv":
    args = _csv_args(_write(tmp_path / "r.csv", "u,i,w\na,x,1\n,,\n\n  \n , \nb,y,2\n"))
    name = "r.csv"
  elif loader == "tsv":
    args = _predefined(tmp_path, "user_id\titem_id\na\tx\n\t\n\n \t \nb\ty\n")
    name = "train.tsv"
  elif loader == "lightgcn":
    args = _lightgcn_dir(tmp_path, "0 1\n   \n\n1 2\n\t\n")
    name = "train.txt"
  elif loader == "atomic":
    args = _atomic_dir(tmp_path, "user_id:token\titem_id:token\na\tx\n\t\nb\ty\n\n")
    name = "x.inter"
  elif loader == "lastfm":
    args = _lastfm_dir(tmp_path, "1\t10\t5\n \t \n2\t10\t1\n")
    name = "data1.txt"
  else:
    users = (DATA / "ml100k_grouplens" / "u.user").read_text().splitlines()
    args = _grouplens_dir(tmp_path, u_user="\n".join(users[:2] + ["||||"] + users[2:]) + "\n")
    name = "u.user"
  stats, warned = _warnings(*args)
  blank = [w for w in warned if "made only of separators or whitespace" in w]
  assert len(blank) == 1, warned
  assert f"{name}: skipped {count} lines" in blank[0]
  assert f"(first at {tmp_path}" in blank[0] and f"{name}:{first})" in blank[0]
  if loader == "ml-100k":
    assert stats["users"] == len(users)  # no user with an empty id


def test_empty_lines_alone_are_silent(tmp_path):
  stats, warned = _warnings(*_csv_args(_write(tmp_path / "r.csv", "u,i,w\n\na,x,1\n\n\nb,y,2\n\n")))
  assert warned == [] and stats["interactions"] == 2


def test_ids_of_absurd_length_are_kept_with_a_count(tmp_path):
  long_user, long_item = "u" * 300, "i" * 10_000
  f = _write(tmp_path / "r.tsv", f"user_id\titem_id\na\tx\n{long_user}\tx\nb\t{long_item}\n"
                                 f"c\t{long_item}\n")
  stats, warned = _warnings("--train", f)
  assert stats["users"] == 4 and stats["items"] == 2  # kept as written
  assert any("1 user ids longer than 256 characters (longest 300; first at" in w and "r.tsv:3" in w
             for w in warned), warned
  assert any("2 item ids longer than 256 characters (longest 10,000;" in w for w in warned)
  assert all(len(w) < 600 for w in warned)  # the ids are shortened in messages
  # Metadata ids are counted too.
  meta = _write(tmp_path / "items.tsv", f"item_id\ttitle\nx\tX\n{long_item}\tL\n")
  _, warned = _warnings("--train", f, "--item-meta", meta)
  assert any("items.tsv: 1 ids longer than 256" in w for w in warned), warned


def test_ids_of_absurd_length_are_shortened_in_errors(tmp_path):
  f = _write(tmp_path / "r.tsv", "user_id\titem_id\tweight\na\tx\t1\n" + "b\ty\t" + "9" * 50_000
             + "x\n")
  line = _error("data", "--train", f)
  assert "r.tsv:3: weight '9999" in line and "(50,001 characters) is not a number" in line
  assert len(line) < 300
  # A CSV field beyond the csv module's 128 KiB limit is an error naming its line.
  f = _write(tmp_path / "r.csv", "u,i\na,x\nb," + "y" * 200_000 + "\n")
  line = _error("data", *_csv_args(f, "user=u,item=i"))
  assert "r.csv:3: malformed CSV: field larger than field limit (131072)" in line
