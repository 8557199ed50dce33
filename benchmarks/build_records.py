"""Benchmark `emorefine build-records` on a real corpus against its floor.

Measures, in one run and on the same machine:
  * `import tensorflow` alone (a fresh interpreter, best of 3);
  * a bare decode + log-Mel pass over every file, in one process and in WORKERS processes;
  * `emorefine build-records` (a fresh process, preset emodb): wall time, real-time factor,
    segments, bytes per segment, peak memory of any process involved.
The target from the issue is build-records <= 1.2 x (bare single-process pass + TensorFlow import).
Results are appended to BENCHMARKS.md between markers.

    python benchmarks/build_records.py [CORPUS_DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from _common import EMODB as DEFAULT_CORPUS
from _common import REPO, cpu_count, machine, write_section

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}

BARE = r"""
import glob, sys, time
from concurrent.futures import ProcessPoolExecutor
from emotion_refinery.data.audio import load
from emotion_refinery.data.features import log_mel
from threadpoolctl import threadpool_limits

def one(path):
    with threadpool_limits(1, user_api="blas"):
        return log_mel(load(path)).shape[0]

if __name__ == "__main__":
    files, workers = sorted(glob.glob(sys.argv[1] + "/**/*.*", recursive=True)), int(sys.argv[2])
    start = time.perf_counter()
    if workers == 1:
        frames = sum(map(one, files))
    else:
        with ProcessPoolExecutor(workers) as pool:
            frames = sum(pool.map(one, files, chunksize=8))
    print(frames, time.perf_counter() - start)
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    parser.add_argument("--workers", type=int, default=cpu_count())
    parser.add_argument("--keep", action="store_true", help="keep the records in bench-out/")
    args = parser.parse_args()
    py = sys.executable
    out = REPO / "bench-out" / "records-emodb"
    shutil.rmtree(out, ignore_errors=True)

    # Build first, so the peak RSS of the children is the build's.
    build_s, _ = timed([py, "-m", "cli", "build-records", args.corpus, "-o", str(out), "--preset", "emodb",
                        "--workers", str(args.workers), "-q"])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    manifest = json.loads((out / "manifest.json").read_text())
    segments = sum(s["segments"] for s in manifest["shards"])
    size = sum(s["size"] for s in manifest["shards"])
    audio_s = sum(u["duration"] for u in manifest["utterances"])
    verify_s, _ = timed([py, "-m", "cli", "verify", str(out), "-q"])

    tf_s = min(timed([py, "-c", "import tensorflow"])[0] for _ in range(3))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(BARE)
    bare1 = float(timed([py, f.name, args.corpus, "1"])[1].split()[1])
    bare_n = float(timed([py, f.name, args.corpus, str(args.workers)])[1].split()[1])
    os.unlink(f.name)
    if not args.keep:
        shutil.rmtree(out)

    budget = 1.2 * (bare1 + tf_s)
    rows = [
        ("corpus", f"{args.corpus} ({len(manifest['utterances'])} utterances, {audio_s / 60:.1f} min)"),
        ("segments", f"{segments:,}"),
        ("build-records wall time", f"{build_s:.2f} s ({args.workers} workers)"),
        ("real-time factor", f"{build_s / audio_s:.4f} ({audio_s / build_s:.0f}x faster than real time)"),
        ("bytes per segment (float16)",
         f"{size / segments:.0f} B ({size / 1e6:.1f} MB in {len(manifest['shards'])} shards)"),
        ("peak memory (largest process)", f"{peak_mb:.0f} MB"),
        ("bare decode + log-Mel, 1 process", f"{bare1:.2f} s"),
        (f"bare decode + log-Mel, {args.workers} processes", f"{bare_n:.2f} s"),
        ("import tensorflow", f"{tf_s:.2f} s"),
        ("target: 1.2 x (bare 1-process + TF import)", f"{budget:.2f} s -> {'met' if build_s <= budget else 'MISSED'}"),
        ("emorefine verify (CRC + parse + sha256)", f"{verify_s:.2f} s"),
    ]
    body = "\n".join([
        "## build-records on Emo-DB",
        "",
        f"Measured {machine()}, with `python benchmarks/build_records.py --workers {args.workers}`.",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
    ])
    print(body)
    write_section("build-records", body)


if __name__ == "__main__":
    main()
