"""MLEE's models on Emo-DB, leave-one-speaker-out, beside eGeMAPS + SVM on the same utterances and folds.

Emo-DB's votes are derived from its perception test (`erkennung.txt`): 20 r votes for the label, the
other 20 (1 − r) spread evenly over the other six classes. So the soft targets carry each utterance's
agreement, and existence is "every class" for each utterance that not all listeners recognised (351
of 535): the MLEE model has little to learn there, which is why this script runs the dominant-emotion
classifier by default. Builds `--sequences spectrogram` records once (10 speaker folds), runs
`emorefine mlee` per cell and `emorefine baseline` on the same records, and writes the table to
BENCHMARKS.md. Resumable: finished runs are reused; an interrupted one continues.

    python benchmarks/mlee_emodb.py [--out DIR] [--cells soft,soft-spk,fusion] [--epochs 12] [--seed 0]
                                    [--table-only]

A cell takes 45–100 minutes on one core (the mlp cells: a few minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import EMODB, REPO, machine, run_cli, seed_runs, seeds_note, spread, write_section

from emotion_refinery.decision.baseline import load_baseline, variant_name

#: cell -> mlee flags
CELLS = {
    "hard": ["--variant", "hard"],
    "soft": ["--variant", "soft"],
    "soft-spk": ["--variant", "soft", "--speaker-norm"],
    "soft-speed": ["--variant", "soft", "--speed-perturb"],
    "soft-spk-speed": ["--variant", "soft", "--speaker-norm", "--speed-perturb"],
    "mlee": ["--variant", "mlee"],
    "fusion": ["--variant", "fusion", "--head", "probe"],
    "fusion-spk": ["--variant", "fusion", "--head", "probe", "--speaker-norm"],
    # the mlp backbone on the baseline's own features (`--sequences egemaps` records)
    "soft-mlp-spk": ["--variant", "soft", "--speaker-norm", "--backbone", "mlp"],
    "fusion-mlp-spk": ["--variant", "fusion", "--head", "probe", "--speaker-norm", "--backbone", "mlp"],
}
#: backbone -> (records folder, its --sequences).
RECORDS = {"mlee_crnn": ("rec-spec-loso", "spectrogram"), "mlp": ("rec-egemaps-loso", "egemaps")}


def _backbone(flags: list[str]) -> str:
    return flags[flags.index("--backbone") + 1] if "--backbone" in flags else "mlee_crnn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "mlee-emodb")
    parser.add_argument("--cells", default="soft,soft-spk,fusion", help=f"of {', '.join(CELLS)}")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true", help="run nothing; tabulate the finished runs")
    args = parser.parse_args()
    cells = args.cells.split(",")
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"Received: --cells {','.join(unknown)}; expected some of {', '.join(CELLS)}")
    cli = [sys.executable, "-m", "cli"]
    records = args.out / RECORDS["mlee_crnn"][0]  # the baseline's records
    if not args.table_only:
        for name, kind in sorted({RECORDS[_backbone(CELLS[c])] for c in cells} | {RECORDS["mlee_crnn"]}):
            if not (args.out / name / "manifest.json").exists():
                run_cli([*cli, "build-records", str(EMODB), "-o", str(args.out / name), "--preset", "fast", "--folds",
                         "10", "--folds-by", "speaker", "--sequences", kind, "-q"])
        for norm in (False, True):
            if variant_name(norm) not in (load_baseline(records) or {}):
                run_cli([*cli, "baseline", str(records), "--speaker-norm" if norm else "--no-speaker-norm", "-q"])
        for cell in cells:
            records_dir = args.out / RECORDS[_backbone(CELLS[cell])][0]
            run_cli([*cli, "mlee", str(records_dir), "-o", str(args.out / f"{cell}-s{args.seed}"), *CELLS[cell],
                     "--epochs", str(args.epochs), "--seed", str(args.seed), "-q"])
    lines = [
        "## MLEE's models on Emo-DB, leave-one-speaker-out (`benchmarks/mlee_emodb.py`)", "",
        f"Measured {machine()}, with `python benchmarks/mlee_emodb.py --cells C --epochs {args.epochs} "
        "--seed S` (cells one per core, two side by side; mean ± sd over the seeds run): records "
        "`build-records --preset fast --folds 10 --folds-by speaker --sequences spectrogram` (`egemaps` for the "
        f"mlp cells), `emorefine mlee RECORDS -o RUN FLAGS --epochs {args.epochs}`; votes from the perception "
        "test (see the script's docstring); the baseline on the same records.", "",
        "| model | flags | WA % | UA % | macro-F1 % | existence macro-F1 % | time (min, one core) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cell, flags in CELLS.items():  # every seed run of the cell: mean ± sd
        found = [json.loads((p / "report.json").read_text()) for p in seed_runs(args.out, f"{cell}-s")
                 if (p / "report.json").exists()]
        if found:
            wa, ua, f1 = (spread([r[m] for r in found]) for m in ("wa", "ua", "macro_f1"))
            existence = spread([r["existence"]["macro_f1"] for r in found])
            minutes = sum(r["seconds"] for r in found) / len(found) / 60
            lines.append(f"| `{_backbone(flags)}`, {cell}{seeds_note(len(found))} | `{' '.join(flags)}` "
                         f"| {wa} | {ua} | {f1} | {existence} | {minutes:.0f} |")
    for _name, b in sorted((load_baseline(records) or {}).items()):
        if b.get("label_noise") is None:
            lines.append(f"| eGeMAPS + SVM | `baseline{' --speaker-norm' if b['speaker_norm'] else ''}` | "
                         f"{100 * b['wa']:.2f} | {100 * b['ua']:.2f} | {100 * b['macro_f1']:.2f} | | |")
    body = "\n".join(lines)
    print(body)
    write_section("mlee-emodb", body)


if __name__ == "__main__":
    main()
