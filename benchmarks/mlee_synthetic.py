"""MLEE and the dominant-emotion classifiers on a synthetic corpus with simulated annotators.

The corpus (`emorefine synth-corpus --annotators N`) knows which emotions each utterance holds (its
label over part of it, neutral over the rest), and its annotators vote for one of them by the share
it covers (or, with the noise probability, for any class). Builds spectrogram records once, runs
`emorefine mlee` per variant on the same folds, and writes WA / UA and the existence F1 of each to
BENCHMARKS.md. Resumable: finished runs are reused.

    python benchmarks/mlee_synthetic.py [--out DIR] [--per-class N] [--annotators N] [--folds K] [--variants a,b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import REPO, machine, write_section

VARIANTS = ("hard", "soft", "mlee", "pretrain", "fusion")


def _run(cmd: list[str]) -> None:
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "mlee-synthetic")
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cli"]
    corpus, records = args.out / "corpus", args.out / "records"
    if not (corpus / "manifest.csv").exists():
        _run([*cli, "synth-corpus", str(corpus), "--per-class", str(args.per_class), "--annotators",
              str(args.annotators), "--annotator-noise", str(args.noise), "--seed", str(args.seed)])
    if not (records / "manifest.json").exists():
        _run([*cli, "build-records", str(corpus), "--manifest", str(corpus / "manifest.csv"), "-o", str(records),
              "--preset", "fast", "--folds", str(args.folds), "--sequences", "spectrogram", "-q"])
    rows = []
    for variant in args.variants.split(","):
        out = args.out / f"run-{variant}-e{args.epochs}"
        _run([*cli, "mlee", str(records), "-o", str(out), "--variant", variant, "--epochs", str(args.epochs), "-q"])
        rows.append((variant, json.loads((out / "report.json").read_text())))
    lines = [
        "## MLEE on a synthetic corpus with simulated annotators", "",
        f"Measured {machine()}, with `python benchmarks/mlee_synthetic.py --per-class {args.per_class} --annotators "
        f"{args.annotators} --noise {args.noise} --folds {args.folds} --epochs {args.epochs} --seed {args.seed}`: "
        f"`synth-corpus` ({4 * args.per_class} utterances, 4 classes, each emotion over 40–70 % of its utterance, "
        f"neutral elsewhere; {args.annotators} annotators per utterance, each voting for a present emotion by its "
        f"share, or with probability {args.noise} for any class), `build-records --sequences spectrogram --folds "
        f"{args.folds}` (stratified), `mlee --variant V --epochs {args.epochs}`; one seed.", "",
        "| variant | WA (%) | UA (%) | macro-F1 (%) | existence precision (%) | existence recall (%) | existence F1 (%) "
        "| time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, r in rows:
        e = r["existence"]
        lines.append(f"| {variant} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | {100 * r['macro_f1']:.2f} | "
                     f"{100 * e['macro_precision']:.2f} | {100 * e['macro_recall']:.2f} | {100 * e['macro_f1']:.2f} | "
                     f"{r['seconds']:.0f} |")
    body = "\n".join(lines)
    print(body)
    write_section("mlee-synthetic", body)


if __name__ == "__main__":
    main()
