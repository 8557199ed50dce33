"""Emo-DB refine runs at a CPU-sized configuration, beside the papers' Emo-DB rows.

Runs `emorefine refine` on Emo-DB records for each rule (default: wdsl α=0.2 and bdsl) and
writes per-round WA/UA, segment accuracy, EP entropy, label drift and wall time per round to
BENCHMARKS.md. Runs are resumable: re-running the script continues where it stopped.

    python benchmarks/refine_emodb.py [--preset fast] [--segment-hop N] [--backbone small] [--rounds 3]
                                      [--rules wdsl,bdsl] [--extra "--epochs 4"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import EMODB, REPO, machine, write_section

PAPERS = [
    "| EfficientNet-B0, GPU (papers) | hard → wdsl α=0.2 | 83.36 / 82.54 → 92.90 / 93.02 |",
    "| VGG19, GPU (papers) | hard → bdsl, 2 rounds | 83.00 / 82.36 → 83.74 / 83.96 → 69.91 / 67.92 (collapse) |",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--segment-hop", type=int, default=None, help="override the preset's segment hop")
    parser.add_argument("--backbone", default="small")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rules", default="wdsl,bdsl")
    parser.add_argument("--extra", default="", help="more refine flags, e.g. '--epochs 4'")
    args = parser.parse_args()
    name = f"emodb-{args.preset}" + (f"-hop{args.segment_hop}" if args.segment_hop else "")
    records = REPO / "bench-out" / f"records-{name}"
    if not (records / "manifest.json").exists():
        hop = ["--segment-hop", str(args.segment_hop)] if args.segment_hop else []
        subprocess.run([sys.executable, "-m", "cli", "build-records", str(EMODB), "-o", str(records), "--preset",
                        args.preset, *hop, "-q"], check=True, cwd=REPO)
    reports = {}
    for rule in args.rules.split(","):
        extra = "-" + args.extra.replace(" ", "") if args.extra else ""
        out = REPO / "bench-out" / f"run-{name}-{args.backbone}-{rule}{extra}"
        cmd = [sys.executable, "-m", "cli", "refine", str(records), "-o", str(out), "--preset", args.preset,
               "--backbone", args.backbone, "--rounds", str(args.rounds), "--rule", rule, *args.extra.split()]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
        reports[rule] = json.loads((out / "report.json").read_text())

    manifest = json.loads((records / "manifest.json").read_text())
    segments = sum(s["segments"] for s in manifest["shards"])
    lines = [
        "## refine on Emo-DB (CPU-sized)",
        "",
        f"Measured {machine()}, with `python benchmarks/refine_emodb.py --preset {args.preset}"
        f"{' --segment-hop ' + str(args.segment_hop) if args.segment_hop else ''} --backbone "
        f"{args.backbone} --rounds {args.rounds} --rules {args.rules}"
        f"{' --extra ' + repr(args.extra) if args.extra else ''}`:",
        f"records with preset `{args.preset}`, segment hop {manifest['settings']['features']['segment_hop']} frames "
        f"({segments:,} segments), backbone `{args.backbone}`, "
        f"{manifest['folds']['protocol']}, fold k+1 for early stopping; settings as `report.json` `config`: "
        f"{json.dumps({k: v for k, v in next(iter(reports.values()))['config'].items() if k not in ('rule',)})}.",
        "",
        "| rule | round | WA (%) | UA (%) | segment acc. (%) | EP entropy | label drift (%) | wall time (s) "
        "| mean epochs | out-of-fold step / training |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports.values():
        for r in report["rounds"]:
            alpha = "" if r["alpha"] is None else f" α={r['alpha']:g}"
            epochs = sum(f["epochs"] for f in r["folds"]) / len(r["folds"])
            oof = sum(f["oof_seconds"] for f in r["folds"]) / sum(f["seconds"] - f["oof_seconds"] for f in r["folds"])
            lines.append(f"| {r['rule']}{alpha} | {r['round']} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | "
                         f"{100 * r['segment_accuracy']:.2f} | {r['ep_entropy']:.3f} | {100 * r['label_drift']:.1f} | "
                         f"{r['seconds']:.0f} | {epochs:.1f} | {100 * oof:.1f} % |")
    lines += ["", "The papers' Emo-DB rows (full segment hop 1, GPU, WA / UA %):", "",
              "| model | rules | WA / UA (%) |", "|---|---|---|", *PAPERS]
    body = "\n".join(lines)
    print(body)
    write_section("refine-emodb", body)


if __name__ == "__main__":
    main()
