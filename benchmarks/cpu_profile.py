"""The `cpu` profile on Emo-DB, and an ablation of its levers, beside the eGeMAPS + SVM baseline.

Builds Emo-DB records with `--preset cpu` (the papers' 131,053 segments) for the chosen fold protocol,
runs `emorefine baseline` on them, then one `emorefine refine` per variant (the preset itself, and the
preset with one lever changed), and writes per-round WA / UA / validation UA and time per round to
BENCHMARKS.md. Every run is resumable: re-running the script continues where it stopped and
re-uses finished runs.

    python benchmarks/cpu_profile.py [--folds-by label|speaker] [--variants cpu,small,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import EMODB, REPO, machine, write_section

#: name → (description, extra refine flags, rounds). "cpu" is the profile; the others change one lever.
VARIANTS = {
    "cpu": ("the `cpu` preset (tcnn, stride 4, ≤ 5 epochs, wdsl α = 0.2)", [], 3),
    "small": ("backbone `small` instead of `tcnn`", ["--backbone", "small"], 1),
    "stride8": ("train stride 8, ≤ 10 epochs (same budget)", ["--train-stride", "8", "--epochs", "10"], 1),
    "specaug": ("+ SpecAugment-style masks", ["--spec-augment"], 1),
    "mixup": ("+ mixup α = 0.2", ["--mixup", "0.2"], 1),
    "nominepochs": ("early stopping from epoch 1 (`--min-epochs 0 --patience 3`)", ["--min-epochs", "0",
                                                                                   "--patience", "3"], 1),
    "speakernorm": ("+ per-speaker band normalisation (`--speaker-norm`)", ["--speaker-norm"], 1),
    "xfit": ("cross-fit targets (`--targets cross-fit`, no leak)", ["--targets", "cross-fit"], 2),
    "gsl": ("rule gsl instead of wdsl", ["--rule", "gsl"], 3),
    "anneal": ("wdsl with α from 0.5 to 0.2 (`--alpha 0.5:0.2`)", ["--alpha", "0.5:0.2"], 3),
}


def _run(cmd: list[str]) -> float:
    print(" ".join(cmd[2:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds-by", default="label", choices=("label", "speaker"))
    parser.add_argument("--variants", default="cpu", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"Received: variants {sorted(unknown)}; expected some of {', '.join(VARIANTS)}")
    suffix = "" if args.folds_by == "label" else "-speaker"
    records = args.out / f"records-emodb-cpu{suffix}"
    cli = [sys.executable, "-m", "cli"]
    if not (records / "manifest.json").exists():
        _run([*cli, "build-records", str(EMODB), "-o", str(records), "--preset", "cpu", "--folds", "10",
              "--folds-by", args.folds_by, "-q"])
    try:
        for norm in ([], ["--speaker-norm"]):
            _run([*cli, "baseline", str(records), "-q", *norm])
    except subprocess.CalledProcessError:
        print("baseline skipped (install the [baseline] extra for opensmile)", flush=True)
    reports = {}
    for name in args.variants.split(","):
        _, flags, rounds = VARIANTS[name]
        out = args.out / f"run-emodb-cpu{suffix}-{name}"
        _run([*cli, "refine", str(records), "-o", str(out), "--rounds", str(rounds), "-q", *flags])
        reports[name] = json.loads((out / "report.json").read_text())

    # Rows of every variant finished in --out, not only of those run now, so a one-variant call adds its row.
    for name in VARIANTS:
        done = args.out / f"run-emodb-cpu{suffix}-{name}" / "report.json"
        if name not in reports and done.is_file():
            reports[name] = json.loads(done.read_text())
    reports = {name: reports[name] for name in VARIANTS if name in reports}
    manifest = json.loads((records / "manifest.json").read_text())
    baseline_path = records / "baseline.json"
    baseline = json.loads(baseline_path.read_text())["runs"] if baseline_path.exists() else {}
    lines = [
        f"## The cpu profile on Emo-DB, {manifest['folds']['protocol']}",
        "",
        f"Measured {machine()}, with `python benchmarks/cpu_profile.py --folds-by {args.folds_by} --variants "
        f"{args.variants}`: records `build-records --preset cpu` ({sum(s['segments'] for s in manifest['shards']):,} "
        f"segments), `refine --rounds R [flags]`; fold k + 1 stops training early. Time: wall time of the round "
        "(10 folds), on a machine also running other work when noted below.",
        "",
        "| variant | round | rule | WA (%) | UA (%) | macro-F1 (%) | val. UA (%) | segment acc. (%) | time (min) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in (("plain", "eGeMAPSv02 + SVM"), ("speaker_norm", "eGeMAPSv02 + SVM, speaker-normalised")):
        if key in baseline:
            b = baseline[key]
            lines.append(f"| baseline: {name} | | | {100 * b['wa']:.2f} | {100 * b['ua']:.2f} | "
                         f"{100 * b['macro_f1']:.2f} | | | |")
    for name, report in reports.items():
        for r in report["rounds"]:
            alpha = "" if r["alpha"] is None else f" α={r['alpha']:g}"
            val = "" if r.get("validation_ua") is None else f"{100 * r['validation_ua']:.2f}"
            lines.append(f"| {VARIANTS[name][0]} | {r['round']} | {r['rule']}{alpha} | {100 * r['wa']:.2f} | "
                         f"{100 * r['ua']:.2f} | {100 * r['macro_f1']:.2f} | {val} | {100 * r['segment_accuracy']:.2f} "
                         f"| {r['seconds'] / 60:.1f} |")
    body = "\n".join(lines)
    print(body)
    write_section(f"cpu-profile{suffix}", body)


if __name__ == "__main__":
    main()
