"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

from emotion_refinery.util.processes import cpu_count

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


def seed_runs(out: Path, prefix: str) -> list[Path]:
    """The run directories ``out/{prefix}{seed}`` (one per seed), ordered by seed."""
    runs = [p for p in out.glob(f"{prefix}*") if p.name[len(prefix):].isdigit()]
    return sorted(runs, key=lambda p: int(p.name[len(prefix):]))


def spread(values) -> str:
    """Fractions as percentages: one seed's, or their mean ± sd over several."""
    import numpy as np

    a = 100 * np.asarray(values, np.float64)
    return f"{a[0]:.2f}" if len(a) == 1 else f"{a.mean():.2f} ± {a.std():.2f}"


def seeds_note(n: int) -> str:
    """`` (N seeds)`` after a row label where a row averages several seeds."""
    return f" ({n} seeds)" if n > 1 else ""
