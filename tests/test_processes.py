"""build-records' worker processes end with their parent, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("prctl", [True, False], ids=["prctl", "polling"])
def test_a_worker_whose_parent_is_gone_exits(prctl):
    # The parent pid the worker was told is not its parent (any more): as if the parent died before the
    # worker set itself up. With prctl that is checked at once; elsewhere the polling thread notices.
    code = ("import time\n"
            "import emotion_refinery.util.processes as p\n"
            f"{'' if prctl else 'p._set_pdeathsig = lambda sig: False'}\n"
            "p.exit_with_parent(2 ** 22 + 1)\n"
            "time.sleep(30)\n")
    start = time.monotonic()
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=20).returncode == 1
    assert time.monotonic() - start < 10


def _children(parent: int) -> dict[int, str]:
    """Live (not zombie) processes whose parent is ``parent``: pid → command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # it ended while we looked
        if int(fields[1]) == parent and fields[0] not in "ZX":
            found[int(stat.parent.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in "ZX"


BUILD = ("import sys\n"
         "from emotion_refinery.records.build import build_records\n"
         "build_records(sys.argv[1], sys.argv[2], corpus='csv', manifest=sys.argv[3], workers=2)\n")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers through /proc")
def test_build_records_workers_exit_when_the_build_is_killed(tmp_path):
    from emotion_refinery.data.synthetic import make_corpus

    manifest = make_corpus(tmp_path / "corpus", per_class=24, seed=0)  # 96 files: several seconds on 2 workers
    out = tmp_path / "rec"
    build = subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / "corpus"), str(out), str(manifest)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        # Kill it while its workers are busy: both started and the first frames cached.
        while not (len(workers) == 2 and any((out / ".partial" / "frames").glob("*.npy"))):
            assert build.poll() is None, "the build ended before its workers could be seen; use a larger corpus"
            assert time.monotonic() < deadline, f"no two busy workers after 120 s: {workers}"
            time.sleep(0.05)
            workers = {p: c for p, c in _children(build.pid).items() if "spawn_main" in c}
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "workers outlived their killed parent"
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        for pid in workers:  # never leave orphans behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not (out / "manifest.json").exists()
