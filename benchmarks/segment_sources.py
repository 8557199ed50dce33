"""Segment shards against segments cut on the fly from the log-Mel sequence shards (`--segments-from`).

On records built with `--sequences log-mel` (e.g. `emorefine build-records …/emodb/wav -o rec --preset cpu
--folds 10 --sequences log-mel`): the bytes on disk of each layout, and for each source, in a fresh Python
process, the training input pipeline of split 0 (8 training folds, hard labels, the memory cache, a shuffled
epoch) at each train stride, read for `--epochs` epochs without a model: segments/s of the first epoch (parsing
and caching) and of the later ones (from the cache), and the process' peak resident memory above what it held
once the pipeline was built (TensorFlow, the manifest, the label tables).

    python benchmarks/segment_sources.py RECORDS [--strides 1,4] [--epochs 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, write_section

from emotion_refinery.data.feature_config import SEGMENT_SOURCES
from emotion_refinery.data.folds import split_folds
from emotion_refinery.records.manifest import RecordsManifest


def measure(records: Path, labels: Path, source: str, stride: int, epochs: int) -> dict:
    import numpy as np

    from emotion_refinery.records.datasets import count_training_segments, training_dataset
    from emotion_refinery.records.run_dir import RunDir

    manifest = RecordsManifest.load(records)
    run = RunDir(labels)
    if not run.labels_complete(0, manifest, manifest.n_folds - 1):
        table = manifest.segment_table()
        for k in range(manifest.n_folds):
            lo, hi = manifest.fold_segments(k)
            run.write_labels(0, manifest, k, np.eye(len(manifest.classes), dtype=np.float32)[table["label"][lo:hi]])
    train, _ = split_folds(manifest.n_folds, 0)
    ds = training_dataset(manifest, labels_dir=run.labels_dir(0), folds=train, batch_size=128, seed=0,
                          stride=stride, segments_from=source)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for x, _ in ds:
            n += int(x.shape[0])
        seconds.append(time.perf_counter() - start)
    assert n == count_training_segments(manifest, train, stride)
    return {"segments": n, "seconds": seconds, "rss_before_mib": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records")
    parser.add_argument("--strides", default="1,4")
    parser.add_argument("--stride", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one source, write --json
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    records = Path(args.records)
    if args.one:
        Path(args.json).write_text(json.dumps(measure(records, Path(args.labels), args.one, args.stride, args.epochs)))
        return
    manifest = RecordsManifest.load(records)
    if manifest.data["settings"].get("sequences") != "log-mel":
        sys.exit(f"Received: records={str(records)!r} without log-Mel sequence shards; expected records built with "
                 "`build-records --sequences log-mel`")
    on_disk = {"segments": sum(manifest.shard_path(s).stat().st_size for s in manifest.shards),
               "sequences": sum((records / s["sequences"]["path"]).stat().st_size for s in manifest.shards)}
    lines = ["| train stride | `--segments-from` | shards on disk (MB) | training segments | first epoch "
             "(segments/s) | later epochs (segments/s) | peak memory over the pipeline's start (MiB) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    strides = [int(s) for s in args.strides.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for stride in strides:
            for source in SEGMENT_SOURCES:  # each in a fresh process, so neither inherits the other's memory
                out = Path(tmp) / f"{source}.json"
                subprocess.run([sys.executable, __file__, str(records), "--one", source, "--labels",
                                str(Path(tmp) / "run"), "--json", str(out), "--stride", str(stride), "--epochs",
                                str(args.epochs)], check=True)
                r = json.loads(out.read_text())
                print(stride, source, r, flush=True)
                first, later = r["seconds"][0], r["seconds"][1:]
                later_rate = f"{r['segments'] * len(later) / sum(later):,.0f}" if later else ""
                lines.append(f"| {stride} | {source} | {on_disk[source] / 1e6:,.1f} | {r['segments']:,} | "
                             f"{r['segments'] / first:,.0f} | {later_rate} | "
                             f"{r['peak_rss_mib'] - r['rss_before_mib']:,.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section("segment-sources", "## Segment shards or segments cut from sequences (`--segments-from`)\n\n"
                      f"Machine: {machine()}\n\nCommand: `python benchmarks/segment_sources.py {records.name} "
                      f"--strides {args.strides} --epochs {args.epochs}` ({manifest.n_segments:,} segments of "
                      f"{len(manifest.utterances)} utterances; split 0's training folds, the memory cache, "
                      f"batches of 128, no model)\n\n{table}")

if __name__ == "__main__":
    main()
