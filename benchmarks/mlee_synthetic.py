"""MLEE and the dominant-emotion classifiers on a synthetic corpus with simulated annotators.

The corpus (`emorefine synth-corpus --annotators N`) knows which emotions each utterance holds (its
label over part of it, neutral over the rest), and its annotators vote for one of them by the share
it covers (or, with the noise probability, for any class). Builds spectrogram records once, runs
`emorefine mlee` per variant on the same folds, and writes WA / UA and the existence F1 of each to
BENCHMARKS.md. Resumable: finished runs are reused.

    python benchmarks/mlee_synthetic.py [--out DIR] [--per-class N] [--annotators N] [--folds K] [--variants a,b]

With ``--majority-labels`` the corpus is labelled as a voted corpus is (the class with more than half of
the votes, or no label), the records keep the unlabelled utterances (``--no-majority keep``), and each
variant with an MLEE model runs with ``--train-on dominant`` and ``--train-on all`` (a section of its own).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import REPO, machine, run_cli, write_section

VARIANTS = ("hard", "soft", "mlee", "pretrain", "fusion")


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
    parser.add_argument("--majority-labels", action="store_true")
    parser.add_argument("--head", default="adam", help="mlee --head of pretrain and fusion")
    args = parser.parse_args()
    if args.majority_labels and args.out == parser.get_default("out"):
        args.out = REPO / "bench-out" / "mlee-synthetic-majority"
    cli = [sys.executable, "-m", "cli"]
    corpus, records = args.out / "corpus", args.out / "records"
    if not (corpus / "manifest.csv").exists():
        run_cli([*cli, "synth-corpus", str(corpus), "--per-class", str(args.per_class), "--annotators",
              str(args.annotators), "--annotator-noise", str(args.noise), "--seed", str(args.seed),
              *(["--majority-labels"] if args.majority_labels else [])])
    if not (records / "manifest.json").exists():
        run_cli([*cli, "build-records", str(corpus), "--manifest", str(corpus / "manifest.csv"), "-o", str(records),
              "--preset", "fast", "--folds", str(args.folds), "--sequences", "spectrogram", "-q",
              *(["--no-majority", "keep"] if args.majority_labels else [])])
    rows = []
    for variant in args.variants.split(","):
        both = args.majority_labels and variant not in ("hard", "soft")
        for train_on in ("dominant", "all") if both else ("dominant",):
            out = args.out / (f"run-{variant}-e{args.epochs}" + ("" if args.head == "adam" else f"-{args.head}")
                              + ("" if train_on == "dominant" else "-all"))
            run_cli([*cli, "mlee", str(records), "-o", str(out), "--variant", variant, "--epochs", str(args.epochs),
                  "--train-on", train_on, "--head", args.head, "-q"])
            rows.append((variant if train_on == "dominant" else f"{variant}, `--train-on all`",
                         json.loads((out / "report.json").read_text())))
    majority = ""
    if args.majority_labels:
        manifest = json.loads((records / "manifest.json").read_text())
        majority = (f" With `--majority-labels`: each utterance labelled by the class with more than half of its "
                    f"votes, or left unlabelled; {len(manifest['utterances'])} labelled, "
                    f"{len(manifest.get('vote_only', []))} unlabelled utterances kept by `build-records --no-majority "
                    "keep` (trained on by `--train-on all` only; every run is scored on the labelled test "
                    "utterances, against their majority labels, and existence against the votes).")
    lines = [
        "## MLEE on a synthetic corpus with simulated annotators"
        + (", labelled by majority vote (`--train-on all`)" if args.majority_labels else ""), "",
        f"Measured {machine()}, with `python benchmarks/mlee_synthetic.py --per-class {args.per_class} --annotators "
        f"{args.annotators} --noise {args.noise} --folds {args.folds} --epochs {args.epochs} --seed {args.seed}"
        f"{' --majority-labels' if args.majority_labels else ''}"
        f"{'' if args.head == 'adam' else f' --head {args.head}'}`: "
        f"`synth-corpus` ({4 * args.per_class} utterances, 4 classes, each emotion over 40–70 % of its utterance, "
        f"neutral elsewhere; {args.annotators} annotators per utterance, each voting for a present emotion by its "
        f"share, or with probability {args.noise} for any class), `build-records --sequences spectrogram --folds "
        f"{args.folds}` (stratified), `mlee --variant V --epochs {args.epochs}`; one seed.{majority}", "",
        "| variant | WA (%) | UA (%) | macro-F1 (%) | existence precision (%) | existence recall (%) "
        "| existence F1 (%) | time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, r in rows:
        e = r["existence"]
        lines.append(f"| {variant} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | {100 * r['macro_f1']:.2f} | "
                     f"{100 * e['macro_precision']:.2f} | {100 * e['macro_recall']:.2f} | {100 * e['macro_f1']:.2f} | "
                     f"{r['seconds']:.0f} |")
    body = "\n".join(lines)
    print(body)
    write_section("mlee-majority" if args.majority_labels else "mlee-synthetic", body)


if __name__ == "__main__":
    main()
