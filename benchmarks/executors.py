"""What each refine executor costs per (round, fold) task, and what the parent process holds.

Builds a small synthetic corpus (`synth-corpus --per-class N`, 10 folds), then runs the same refine
(`small` backbone, 1 epoch, 2 rounds: 20 tasks) with `--executor local`, `process` and `ray` (a local
Ray cluster of 1 CPU, so tasks run one at a time as with the others), each in a fresh Python process.
For each: wall time, the
mean time per task over local's, the parent's resident memory after each task (its peak and its
growth from the first to the last task), and whether the reports are identical.

    python benchmarks/executors.py [--per-class 12] [--executors local,process,ray] [--write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, write_section

from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.synthetic import make_corpus
from emotion_refinery.records.build import build_records
from emotion_refinery.refine.rounds import refine
from emotion_refinery.refine.settings import RefineConfig

CONFIG = RefineConfig(rounds=2, backbone="small", epochs=1, batch_size=64, bn_momentum=0.9, seed=0)


def rss_mib() -> float:
    """Resident memory of this process (``VmRSS``), MiB."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(records: Path, out: Path, executor: str) -> dict:
    samples: list[float] = []

    def log(line: str) -> None:
        if line.startswith("round ") and " fold " in line and ":" in line and ": ran on " not in line:
            samples.append(rss_mib())

    start = time.perf_counter()
    report = refine(records, out, CONFIG, log=log, executor=executor, parallel=1)
    seconds = time.perf_counter() - start
    rounds = [{k: r[k] for k in ("wa", "ua", "segment_accuracy", "label_drift")} for r in report["rounds"]]
    return {"seconds": seconds, "tasks": len(samples), "rss": samples, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--executors", default="local,process,ray")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one executor, write --json
    parser.add_argument("--records", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = measure(Path(args.records), Path(args.json).with_suffix(""), args.one)
        Path(args.json).write_text(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_corpus(root / "corpus", per_class=args.per_class, seed=0)
        build_records(root / "corpus", root / "rec", corpus="csv", manifest=manifest,
                      features=FeatureConfig(segment_hop=8), n_folds=10, workers=1)
        results = {}
        for name in args.executors.split(","):  # each in a fresh process, so no run inherits another's memory
            out = root / f"run-{name}.json"
            subprocess.run([sys.executable, __file__, "--one", name, "--records", str(root / "rec"),
                            "--json", str(out)], check=True)
            results[name] = json.loads(out.read_text())
            print(f"{name}: {results[name]['seconds']:.1f} s, parent RSS {results[name]['rss']}", flush=True)
    local = results.get("local")
    lines = ["| executor | tasks | wall (s) | per task over local (s) | parent RSS after task 1 → last (MiB) | "
             "parent peak (MiB) | report as local's |", "|---|---:|---:|---:|---|---:|---|"]
    for name, r in results.items():
        over = same = ""
        if local is not None and name != "local":
            over = f"{(r['seconds'] - local['seconds']) / r['tasks']:+.2f}"
            same = "identical" if r["rounds"] == local["rounds"] else "differs"
        lines.append(f"| {name} | {r['tasks']} | {r['seconds']:.1f} | {over} "
                     f"| {r['rss'][0]:.0f} → {r['rss'][-1]:.0f} | {max(r['rss']):.0f} | {same} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps({n: r["rss"] for n, r in results.items()}))
    if args.write:
        write_section("executors", f"## refine executors: overhead per task and parent memory\n\nMachine: {machine()}"
                      f"\n\nCommand: `python benchmarks/executors.py --per-class {args.per_class} --executors "
                      f"{args.executors}` ({args.per_class * 4} synthetic utterances, 10 folds, 2 rounds, `small`, "
                      f"1 epoch)\n\n{table}")


if __name__ == "__main__":
    main()
