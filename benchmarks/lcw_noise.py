"""LC+W against planted label noise on a synthetic corpus: accuracy, and the share of flipped labels it recovers.

Builds a synthetic corpus (`emorefine synth-corpus`) and log-Mel sequence records once, then runs
`emorefine lcw --label-noise P` per (update, label confidence, noise) on the same folds: a share P of the
utterances train and stop early on a wrong label, the held-out folds are scored on their true labels.
Writes WA / UA and, for the runs with noise, the share of flipped (utterance, fold model) pairs whose learned
label is the true one, to BENCHMARKS.md. Resumable: finished runs are reused.

    python benchmarks/lcw_noise.py [--out DIR] [--per-class N] [--noise 0,0.2] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import REPO, machine, run_cli, write_section

#: (update, label confidence) pairs compared.
VARIANTS = (("none", 0.9), ("both", 0.9), ("both", 0.5), ("labels", 0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "lcw-noise")
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--noise", default="0,0.2")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "cli"]
    corpus, records = args.out / "corpus", args.out / "records"
    if not (corpus / "manifest.csv").exists():
        run_cli([*cli, "synth-corpus", str(corpus), "--per-class", str(args.per_class), "--seed", str(args.seed)])
    if not (records / "manifest.json").exists():
        run_cli([*cli, "build-records", str(corpus), "--manifest", str(corpus / "manifest.csv"), "-o", str(records),
              "--preset", "fast", "--folds", str(args.folds), "--folds-by", "speaker", "--sequences", "log-mel",
              "-q"])
    rows = []
    for noise in (float(n) for n in args.noise.split(",")):
        for update, confidence in VARIANTS:
            out = args.out / f"run-{update}-c{confidence:g}-n{noise:g}-e{args.epochs}"
            run_cli([*cli, "lcw", str(records), "-o", str(out), "--update", update,
                     "--label-confidence", str(confidence), "--label-noise", str(noise),
                     "--epochs", str(args.epochs), "--seed", str(args.seed), "-q"])
            rows.append((update, confidence, noise, json.loads((out / "report.json").read_text())))
    lines = [
        "## LC+W against planted label noise (synthetic corpus)", "",
        f"Measured {machine()}, with `python benchmarks/lcw_noise.py --per-class {args.per_class} --folds "
        f"{args.folds} --noise {args.noise} --epochs {args.epochs} --seed {args.seed}`: `synth-corpus` "
        f"({4 * args.per_class} utterances, 4 speakers, 4 classes), `build-records --sequences log-mel --folds "
        f"{args.folds} --folds-by speaker` (one speaker per fold), `lcw --update U --label-confidence C "
        "--label-noise P`; one seed. Recovered: of the (utterance, fold model) pairs trained on a flipped label, "
        "the share whose learned label is the true one; kept: of the correctly labelled pairs, the share that "
        "kept their label.", "",
        "| `--update` | label confidence | noise | WA (%) | UA (%) | recovered (%) | kept (%) | time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for update, confidence, noise, r in rows:
        n = r.get("label_noise") or {}
        rec = f"{100 * n['recovered']:.1f}" if n else ""
        kept = f"{100 * n['kept']:.1f}" if n else ""
        lines.append(f"| {update} | {confidence:g} | {noise:g} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | {rec} | "
                     f"{kept} | {r['seconds']:.0f} |")
    body = "\n".join(lines)
    print(body)
    write_section("lcw-noise", body)


if __name__ == "__main__":
    main()
