"""Utterance classifiers on the stored out-of-fold predictions of finished refine runs (no training).

For each run, and for the mean of the runs' segment predictions when they share their records (an
ensemble over seeds), decides every utterance of round T with each of refine's utterance
classifiers (`forest`, `speaker-forest`, `mean-ep`) under the records' own folds, and prints
WA / UA (%). With --write, the table goes into BENCHMARKS.md (section "utterance-classifiers").

    python benchmarks/utterance_classifiers.py RUN [RUN ...] [--round T] [--write]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import machine, write_section

from emotion_refinery.decision.deciders import UTTERANCE_RULES
from emotion_refinery.decision.utterance import decision_scores, evaluate_forest
from emotion_refinery.records.run_dir import load_run


def scores(q: np.ndarray, manifest, seed: int) -> dict[str, tuple[float, float]]:
    utts = manifest.utterances
    index, n, k = manifest.segment_table()["utterance"], len(utts), len(manifest.classes)
    labels, folds = np.array([u["label_index"] for u in utts]), np.array([u["fold"] for u in utts])
    out = {}
    speakers = [u.get("speaker") for u in utts]
    for name, rule in UTTERANCE_RULES.items():
        if not rule.forest:
            s = decision_scores(labels, rule.decide(q, index, n, n_classes=k).argmax(axis=1), n_classes=k)
            out[name] = (s["wa"], s["ua"])
            continue
        r = evaluate_forest(rule.statistics(q, index, n, speakers), labels, folds, seed=seed, n_classes=k)
        out[name] = (r.wa, r.ua)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows, qs, digests = [], [], set()
    for path in args.runs:
        run, record, manifest = load_run(path)
        q = run.load_predictions(args.round, manifest)
        qs.append(q)
        digests.add(record["records"].get("manifest_sha256", path))
        c = record["config"]
        rows.append((f"`{path.rstrip('/').split('/')[-1]}` ({c.get('preset')}, seed {c['seed']}, "
                     f"{manifest.data['folds']['protocol']})", scores(q, manifest, c["seed"])))
    if len(qs) > 1 and len(digests) == 1:
        rows.append((f"mean of the {len(qs)} runs' segment predictions", scores(np.mean(qs, axis=0), manifest, 0)))
    header = f"| run (round {args.round}) | " + " | ".join(f"{n} WA / UA (%)" for n in UTTERANCE_RULES) + " |"
    lines = [header, "|---|" + "---:|" * len(UTTERANCE_RULES)]
    lines += ["| " + name + " | " + " | ".join(f"{100 * wa:.2f} / {100 * ua:.2f}" for wa, ua in s.values()) + " |"
              for name, s in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section("utterance-classifiers", f"Machine: {machine()}\n\nCommand: `python benchmarks/"
                      f"utterance_classifiers.py {' '.join(args.runs)} --round {args.round}`\n\n{table}")


if __name__ == "__main__":
    main()
