"""The recommended CPU command on both development corpora under speaker folds, beside both SVMs.

For each corpus: `build-records CORPUS -o REC --preset cpu --folds K --folds-by speaker` (Emo-DB: 10 folds, one
speaker each; URDU: 5 folds grouped by speaker), `baseline REC` and `baseline REC --speaker-norm`, then one run
per seed of `refine REC -o RUN --seed S --rounds R` (the records' preset: per split, speaker normalisation and
the utterance decision rule chosen on the other folds). The table gives mean ± sd over the seeds of: both SVMs,
round 0 as the run reports it, the figure of each split's chosen round, and, for comparison only, round 0
decided by each fixed rule (those rows pick nothing; choosing among them by these figures would be choosing on
the test folds). Runs are resumable; the table is written from every finished run under --out.

    python benchmarks/dev_corpora.py [--out DIR] [--corpora emodb,urdu] [--seeds 0,1,2] [--rounds 1]
                                     [--variant NAME -- EXTRA REFINE FLAGS] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import REPO, machine, run_cli, seed_runs, spread, write_section

from emotion_refinery.data.label_noise import training_labels
from emotion_refinery.decision.baseline import load_baseline
from emotion_refinery.decision.choices import DECISION_RULES, ProfileDecider, nested_decisions
from emotion_refinery.decision.utterance import decision_scores
from emotion_refinery.records.run_dir import load_run
from emotion_refinery.refine.settings import RefineConfig

CORPORA = {
    "emodb": (REPO.parent / "shared" / "corpora" / "emodb" / "wav", 10),
    "urdu": (REPO.parent / "shared" / "corpora" / "urdu", 5),
}


def prepare(out: Path, corpus: str) -> Path:
    source, folds = CORPORA[corpus]
    rec = out / f"rec-{corpus}"
    cli = [sys.executable, "-m", "cli"]
    if not (rec / "manifest.json").is_file():
        run_cli([*cli, "build-records", str(source), "-o", str(rec), "--preset", "cpu", "--folds", str(folds),
                 "--folds-by", "speaker", "--quiet"])
    runs = (load_baseline(rec) or {})
    for variant, flags in (("plain", []), ("speaker_norm", ["--speaker-norm"])):
        if variant not in runs:
            run_cli([*cli, "baseline", str(rec), *flags, "--quiet"])
    return rec


def fixed_rules(run_dir: Path) -> dict[str, tuple[float, float]]:
    """Round 0 of a run decided by each rule alone, from its stored out-of-fold profiles: ``{rule: (WA, UA)}``."""
    run, record, manifest = load_run(run_dir)
    config = RefineConfig(**record["config"])
    utts = manifest.utterances
    labels = np.array([u["label_index"] for u in utts])
    decider = ProfileDecider(run.load_predictions(0, manifest), manifest.segment_table()["utterance"],
                             training_labels(manifest, config.label_noise, config.seed),
                             np.array([u["fold"] for u in utts]), [u.get("speaker") for u in utts],
                             n_classes=len(manifest.classes), seed=config.seed)
    out = {}
    for rule in DECISION_RULES:
        probabilities, _ = nested_decisions(decider, (rule,))
        s = decision_scores(labels, probabilities.argmax(1), n_classes=len(manifest.classes))
        out[rule] = (s["wa"], s["ua"])
    return out


def table(out: Path, corpora: list[str], variant: str) -> str:
    lines = ["| corpus, speaker folds | model | WA (%) | UA (%) | seeds |", "|---|---|---:|---:|---:|"]
    notes = []
    for corpus in corpora:
        rec = out / f"rec-{corpus}"
        base = load_baseline(rec) or {}
        name = f"{corpus}, {CORPORA[corpus][1]} folds"
        for key, label in (("plain", "eGeMAPS + SVM"), ("speaker_norm", "eGeMAPS + SVM, speaker-normalised")):
            if key in base:
                lines.append(f"| {name} | {label} | {100 * base[key]['wa']:.2f} | {100 * base[key]['ua']:.2f} | |")
        runs = [r for r in seed_runs(out, f"run-{corpus}-{variant}-s") if (r / "report.json").is_file()]
        if not runs:
            continue
        reports = [json.loads((r / "report.json").read_text()) for r in runs]
        r0 = [rep["rounds"][0] for rep in reports]
        n = len(runs)
        rules = ", ".join(sorted({f"{s['rule']}" for r in r0 for s in r["decision"]["splits"]}))
        norm = [json.loads((r / "choices.json").read_text())["speaker_norm"]["splits"] for r in runs]
        lines.append(f"| {name} | round 0, as reported (rules the splits chose: {rules}) "
                     f"| {spread([r['wa'] for r in r0])} | {spread([r['ua'] for r in r0])} | {n} |")
        if len(reports[0]["rounds"]) > 1:
            sel = [rep["selection"] for rep in reports]
            lines.append(f"| {name} | each split's chosen round | {spread([s['wa'] for s in sel])} | "
                         f"{spread([s['ua'] for s in sel])} | {n} |")
        fixed = [fixed_rules(r) for r in runs]
        for rule in DECISION_RULES:
            lines.append(f"| {name} | round 0 by {rule} only (comparison; not a choice) | "
                         f"{spread([f[rule][0] for f in fixed])} | {spread([f[rule][1] for f in fixed])} | {n} |")
        seconds = [sum(f["seconds"] for f in rep["rounds"][0]["folds"]) for rep in reports]
        notes.append(f"{corpus}: speaker normalisation on in {sorted({sum(s) for s in norm})} of {len(norm[0])} "
                     f"splits; round 0 trained in {np.mean(seconds) / 60:.1f} min (mean over seeds).")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench-out" / "dev-corpora")
    p.add_argument("--corpora", default="emodb,urdu")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--variant", default="cpu", help="run-name part; pass extra refine flags after --")
    p.add_argument("--table-only", action="store_true")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    corpora = args.corpora.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for corpus in corpora:
            rec = prepare(args.out, corpus)
            for seed in map(int, args.seeds.split(",")):
                start = time.time()
                run_cli([sys.executable, "-m", "cli", "refine", str(rec), "-o",
                         str(args.out / f"run-{corpus}-{args.variant}-s{seed}"), "--seed", str(seed), "--rounds",
                         str(args.rounds), "--quiet", *extra])
                print(f"{corpus} seed {seed}: {(time.time() - start) / 60:.1f} min", flush=True)
    body = table(args.out, corpora, args.variant)
    print(body)
    command = " ".join(["python benchmarks/dev_corpora.py", *sys.argv[1:]])
    write_section(f"dev-corpora-{args.variant}",
                  f"## The recommended CPU command on both development corpora (`{args.variant}`)\n\n"
                  f"Measured {machine()}, with `{command}`.\n\n{body}\n")


if __name__ == "__main__":
    main()
