"""One refine process per run directory: a second one is refused naming the first; a killed holder
leaves no lock behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.build import build_records
from emotion_refinery.refine.rounds import refine
from emotion_refinery.refine.settings import resolve_config
from emotion_refinery.util.processes import LOCK_NAME, DirectoryBusy, directory_lock

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time\n"
        "from emotion_refinery.util.processes import directory_lock\n"
        "with directory_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(600)\n")
QUICK = dict(backbone="small", rounds=1, epochs=1, batch_size=64, preset="fast")


def _busy(out: Path, pid: int) -> str:
    return re.escape(f"Received: output={str(out)!r}; another emorefine refine (pid {pid}) is running on it; "
                     "wait for it or use another run directory")


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    root, csv = synthetic_corpus
    out = tmp_path_factory.mktemp("lock") / "records"
    build_records(root, out, manifest=csv, features=FeatureConfig(segment_hop=8), n_folds=3, workers=1)
    return out


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a run directory; yields (run_dir, process)."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield run_dir, proc
    finally:
        proc.kill()
        proc.wait()


def test_lock_is_exclusive_names_its_holder_and_is_removed(tmp_path):
    d = tmp_path / "new"
    with directory_lock(d) as path:
        assert path == d / LOCK_NAME and path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(DirectoryBusy) as info, directory_lock(d):  # a second holder, even this process
            pass
        assert info.value.pid == os.getpid()
    assert not d.exists()  # made for the lock and still empty: removed with it
    (tmp_path / "kept").mkdir()
    with directory_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "config.json").write_text("{}")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["config.json"]


def test_a_second_refine_is_refused_while_this_process_holds_the_lock(records, tmp_path):
    out = tmp_path / "run"
    with directory_lock(out):
        with pytest.raises(EmorefineError, match=_busy(out, os.getpid())):
            refine(records, out, resolve_config(**QUICK), log=lambda s: None, verify=False)
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # nothing of the refused run was written


def test_refine_is_refused_while_another_process_runs_and_goes_ahead_once_it_is_killed(records, holder):
    out, proc = holder
    (out / "notes.txt").write_text("mine")  # so that, past the lock, refine stops at once (a foreign folder)
    with pytest.raises(EmorefineError, match=_busy(out, proc.pid)):
        refine(records, out, resolve_config(**QUICK), log=lambda s: None, verify=False)
    result = CliRunner().invoke(_main(), ["refine", str(records), "-o", str(out), "--backbone", "small"])
    assert result.exit_code == 2 and f"another emorefine refine (pid {proc.pid}) is running" in result.output
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_NAME).is_file()  # left by the killed holder, but no longer locked
    with pytest.raises(EmorefineError, match="expected a new or empty folder"):
        refine(records, out, resolve_config(**QUICK), log=lambda s: None, verify=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # the stale lock file was taken over and removed


@pytest.mark.slow
def test_a_run_whose_lock_holder_was_killed_trains(records, holder):
    out, proc = holder
    with pytest.raises(EmorefineError, match=_busy(out, proc.pid)):
        refine(records, out, resolve_config(**QUICK), log=lambda s: None, verify=False)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = refine(records, out, resolve_config(**QUICK), log=lambda s: None, verify=False)
    assert [r["round"] for r in report["rounds"]] == [0]
    assert not (out / LOCK_NAME).exists()  # released and removed at the end of the run


def test_a_file_as_run_directory_is_refused(records, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EmorefineError, match="expected a new or empty folder"):
        refine(records, tmp_path / "file", resolve_config(**QUICK), log=lambda s: None, verify=False)


def _main():
    from cli.main import main

    return main
