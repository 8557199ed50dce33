"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

from emotion_refinery.processes import cpu_count

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "corpora" / "emodb" / "wav"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    n = cpu_count()
    return (f"{datetime.date.today()} on {n} core{'' if n == 1 else 's'} ({cpu}), {mem:.0f} GiB, "
            f"Python {platform.python_version()}")


def write_section(name: str, body: str) -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in BENCHMARKS.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.rstrip()}\n{end}"
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures measured by the scripts in `benchmarks/`.\n"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def run_cli(cmd: list[str]) -> None:
    """Print ``cmd`` without its interpreter and module (``python -m cli …``), then run it in the repository."""
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
