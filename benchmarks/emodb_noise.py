"""Planted label noise on Emo-DB, leave-one-speaker-out: the refinery's rules and LC+W on the same folds.

Builds the speaker-fold records once (`--preset cpu` segments for the refinery, `--sequences lld` for the
utterance-level models), then runs one cell per (method, noise, seed): a seeded share of the utterance labels is
flipped before training (`--label-noise P`), the test folds are scored on their true labels. Methods:

    hard      the refinery's round 0 (one-hot labels; round 0 of the wdsl run, or a 1-round run)
    wdsl      round 1 of `refine --preset cpu --targets cross-fit --alpha 0.5` (leak-free wdsl)
    lcw-rule  `refine --preset cpu --rounds 2 --rule lcw`: round 0 learns a label and a weight per segment
              from the given labels (LC+W per segment), round 1 trains on round 0's learned labels (both
              rows are reported)
    blstm     `lcw --update none --speaker-norm --epochs 16` (the BLSTM + attention network alone)
    lcw       `lcw --update both --speaker-norm --epochs 16` (LC+W at the utterance level)
    mlp       `lcw --backbone mlp --update none --speaker-norm` on `--sequences egemaps` records: a perceptron
              on the baseline's own features (the 88 eGeMAPS functionals, speaker-normalised)
    lcw-mlp   `lcw --backbone mlp --update both --label-confidence 0.5 --speaker-norm` on the same records
    svm       `baseline [--speaker-norm] --label-noise P`: eGeMAPS + SVM fitted on the same flipped labels,
              plain and speaker-normalised, over --svm-seeds seeds (mean ± sd; seconds per run)

Every cell is resumable (an interrupted run continues), and the table is written from every finished
run under --out, so cells may be run by several processes (one per core) with different --cells.
A cell takes 20–90 minutes on one core (svm: seconds).

    python benchmarks/emodb_noise.py [--out DIR] [--noise 0,0.1,0.2,0.3] [--cells hard,wdsl,...] [--seed 0]
                                     [--svm-seeds 5] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _common import EMODB, REPO, machine, run_cli, seed_runs, seeds_note, spread, write_section

from emotion_refinery.decision.baseline import load_baseline, variant_name

#: method -> (command, run-directory stem, round read from its report; None: an utterance-level run).
METHODS = {
    "hard": ("refine", "refine-wdsl", 0),
    "wdsl": ("refine", "refine-wdsl", 1),
    "lcw-rule-0": ("refine", "refine-lcw", 0),
    "lcw-rule": ("refine", "refine-lcw", 1),
    "blstm": ("lcw", "lcw-none", None),
    "lcw": ("lcw", "lcw-both", None),
    "mlp": ("lcw", "lcw-mlp-none", None),
    "lcw-mlp": ("lcw", "lcw-mlp-both", None),
}
#: run-directory stem -> the records it reads, where not those of its command.
RECORDS = {"lcw-mlp-none": "egemaps", "lcw-mlp-both": "egemaps"}
LABELS = {
    "hard": "refinery round 0 (hard labels)",
    "wdsl": "refinery round 1, wdsl α 0.5, cross-fit",
    "lcw-rule-0": "refinery round 0, `lcw` rule (learned per segment)",
    "lcw-rule": "refinery round 1, `lcw` rule (on round 0's learned labels)",
    "blstm": "BLSTM + attention (`lcw --update none`)",
    "lcw": "LC+W (`lcw --update both`)",
    "mlp": "perceptron on eGeMAPS functionals (`lcw --backbone mlp --update none`)",
    "lcw-mlp": "LC+W on eGeMAPS functionals (`lcw --backbone mlp --update both --label-confidence 0.5`)",
}
#: the noise levels of the table; a run of other levels adds them (the table never drops a finished run).
NOISES = (0.0, 0.1, 0.2, 0.3)
#: the baseline cell: row label -> speaker_norm.
SVM = {"eGeMAPS + SVM (`baseline`)": False, "eGeMAPS + SVM, speaker-normalised": True}


def _flags(stem: str, noise: float, seed: int) -> list[str]:
    common = ["--label-noise", f"{noise:g}", "--seed", str(seed), "-q"]
    return {
        "refine-wdsl": ["--preset", "cpu", "--rounds", "2", "--targets", "cross-fit", "--alpha", "0.5"],
        "refine-lcw": ["--preset", "cpu", "--rounds", "2", "--rule", "lcw"],
        "lcw-none": ["--update", "none", "--epochs", "16", "--speaker-norm"],
        "lcw-both": ["--update", "both", "--epochs", "16", "--speaker-norm"],
        "lcw-mlp-none": ["--backbone", "mlp", "--update", "none", "--speaker-norm"],
        "lcw-mlp-both": ["--backbone", "mlp", "--update", "both", "--label-confidence", "0.5", "--speaker-norm"],
    }[stem] + common


def _records(cli: list[str], out: Path) -> dict[str, Path]:
    paths = {"refine": out / "rec-cpu-loso", "lcw": out / "rec-lld-loso", "egemaps": out / "rec-egemaps-loso"}
    builds = {"refine": ["--preset", "cpu"], "lcw": ["--preset", "fast", "--sequences", "lld"],
              "egemaps": ["--preset", "fast", "--sequences", "egemaps"]}
    for command, path in paths.items():
        if not (path / "manifest.json").exists():
            run_cli([*cli, "build-records", str(EMODB), "-o", str(path), *builds[command], "--folds", "10",
                  "--folds-by", "speaker", "-q"])
    return paths


def _cell(run: Path, round_: int | None) -> dict | None:
    """WA / UA / macro-F1 and the recovery of flipped labels of a finished run (``None`` if not finished)."""
    report = run / "report.json"
    if not report.exists():
        return None
    r = json.loads(report.read_text())
    config = r.get("config", {})
    if round_ is not None:
        rounds = [x for x in r["rounds"] if x["round"] == round_]
        if not rounds:
            return None
        r = rounds[0]
    # Only learned labels (LC+W) or round targets can recover a flip; a plain network's "0 %" says nothing,
    # nor does wdsl's at α >= 0.5 (half of every target stays on the given label, which stays on top).
    plain = (config.get("update") in ("none", "class-weights", "oversample")
             or (round_ and config.get("rule") == "wdsl" and config.get("alpha", 0) >= 0.5))
    n = {} if plain else r.get("label_noise") or {}
    flipped = n.get("flipped", n.get("flipped_pairs"))
    unit = "utterances" if round_ is not None else "(utterance, fold) pairs"
    return {"wa": r["wa"], "ua": r["ua"], "f1": r["macro_f1"], "seconds": r.get("seconds"),
            "recovered": f"{100 * n['recovered']:.1f} % of {flipped} {unit}; {100 * n['kept']:.1f} % kept"
            if n and round_ != 0 else ""}


def _svm_rows(records: Path, noises: list[float], seeds: int) -> list[str]:
    """Table rows of the baseline cells found in ``records/baseline.json``: mean ± sd over the seeds run."""
    runs = load_baseline(records) or {}
    rows = []
    for label, norm in SVM.items():
        for noise in noises:
            found = [runs[k] for k in (variant_name(norm, noise, s) for s in range(seeds if noise else 1)) if k in runs]
            if not found:
                continue
            wa, ua, f1 = (spread([r[m] for r in found]) for m in ("wa", "ua", "macro_f1"))
            rows.append(f"| {label}{seeds_note(len(found))} | {100 * noise:.0f} % | {wa} | {ua} | {f1} "
                        "| | |")  # seconds per run: no time column
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "emodb-noise")
    parser.add_argument("--noise", default=",".join(f"{n:g}" for n in NOISES))
    parser.add_argument("--cells", default="hard,wdsl,lcw-rule,blstm,lcw",
                        help=f"methods to run, of {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svm-seeds", type=int, default=5, help="seeds 0..N-1 of the svm cell's noise")
    parser.add_argument("--table-only", action="store_true", help="run nothing; tabulate the finished runs")
    args = parser.parse_args()
    noises = [float(n) for n in args.noise.split(",")]
    cells = args.cells.split(",")
    unknown = [c for c in cells if c not in METHODS and c != "svm"]
    if unknown:
        parser.error(f"Received: --cells {','.join(unknown)}; expected some of {', '.join(METHODS)}, svm")
    cli = [sys.executable, "-m", "cli"]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        records = _records(cli, args.out)
        for noise in noises:
            for method in cells:
                if method == "svm":
                    for norm in SVM.values():
                        for seed in range(args.svm_seeds if noise else 1):
                            if variant_name(norm, noise, seed) not in (load_baseline(records["refine"]) or {}):
                                run_cli([*cli, "baseline", str(records["refine"]), "--label-noise", f"{noise:g}",
                                      "--seed", str(seed), "--speaker-norm" if norm else "--no-speaker-norm", "-q"])
                    continue
                command, stem, round_ = METHODS[method]
                run = args.out / f"{stem}-n{noise:g}-s{args.seed}"
                if _cell(run, round_) is not None:
                    continue
                flags = _flags(stem, noise, args.seed)
                if method == "hard" and not (run / "report.json").exists():
                    flags[flags.index("--rounds") + 1] = "1"  # a later wdsl cell extends this run
                run_cli([*cli, command, str(records[RECORDS.get(stem, command)]), "-o", str(run), *flags])
    noises = sorted(set(NOISES) | set(noises))
    lines = [
        "## Planted label noise on Emo-DB, leave-one-speaker-out (`benchmarks/emodb_noise.py`)", "",
        f"Measured {machine()}, with `python benchmarks/emodb_noise.py "
        f"--noise {','.join(f'{n:g}' for n in noises)} --seed S` "
        "(cells run one per core, two side by side; the table holds every finished run under its --out, "
        "mean ± sd where several seeds finished): "
        "Emo-DB, 10 speaker folds, a seeded share of the utterance labels flipped for training, early "
        "stopping, the rules and the utterance classifier's training folds; the test folds are scored on "
        "the true labels. Recovered: of the flipped labels, the share whose round targets (refinery) or "
        "learned labels (LC+W) put the true class on top; kept: of the others, the share that kept theirs "
        "(blank where it cannot differ: plain networks, and wdsl at α 0.5, whose targets keep half on the "
        "given label).", "",
        "| method | noise | WA % | UA % | macro-F1 % | flipped labels recovered | time (min) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for method, (_command, stem, round_) in METHODS.items():
        for noise in noises:
            candidates = (_cell(run, round_) for run in seed_runs(args.out, f"{stem}-n{noise:g}-s"))
            found = [c for c in candidates if c is not None]
            if not found:
                continue
            minutes = f"{np.mean([c['seconds'] for c in found]) / 60:.0f}" if all(c["seconds"] for c in found) else ""
            wa, ua, f1 = (spread([c[m] for c in found]) for m in ("wa", "ua", "f1"))
            recovered = " / ".join(c["recovered"] for c in found if c["recovered"])
            lines.append(f"| {LABELS[method]}{seeds_note(len(found))} | {100 * noise:.0f} % | {wa} | {ua} | {f1} | "
                         f"{recovered} | {minutes} |")
    lines += _svm_rows(args.out / "rec-cpu-loso", noises, args.svm_seeds)
    body = "\n".join(lines)
    print(body)
    write_section("emodb-noise", body)


if __name__ == "__main__":
    main()
