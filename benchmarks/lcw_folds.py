"""Compare `emorefine lcw` runs on the folds every one of them has finished (also while they still run).

    python benchmarks/lcw_folds.py RUN_DIR [RUN_DIR ...]

For each run: the pooled WA / UA / macro-F1 of the held-out utterances of those folds (from
``rounds/round-00/lcw/fold-KK.npz``), the network epochs and best epoch per fold, and the share of
training labels whose learned label left the given one. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from emotion_refinery.decision.utterance import decision_scores
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir


def _finished(run: RunDir, n_folds: int) -> set[int]:
    return {k for k in range(n_folds) if run.is_done(0, k)}


def main(paths: list[str]) -> None:
    runs = [RunDir(p) for p in paths]
    records = {json.loads(r.config.read_text())["records"]["path"] for r in runs}
    if len(records) != 1:
        raise SystemExit(f"Received: runs on {len(records)} records folders ({', '.join(sorted(records))}); "
                         "expected runs on the same records")
    manifest = RecordsManifest.load(records.pop())
    folds = sorted(set.intersection(*(_finished(r, manifest.n_folds) for r in runs)))
    if not folds:
        raise SystemExit("no fold is finished in every run")
    test = [u for u in manifest.utterances if u["fold"] in folds]
    truth = np.array([u["label_index"] for u in test])
    print(f"{len(folds)} of {manifest.n_folds} folds ({', '.join(str(k + 1) for k in folds)}), "
          f"{len(test)} held-out utterances\n")
    print("| run | update | warmup | label confidence | WA % | UA % | macro-F1 % | network epochs | best epoch "
          "| labels changed % |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---:|")
    for run in runs:
        config = json.loads(run.config.read_text())["config"]
        pred = np.zeros(len(test), np.int64)
        changed = given_n = 0
        epochs, best = [], []
        for k in folds:
            rows = [i for i, u in enumerate(test) if u["fold"] == k]
            with np.load(run.round_dir(0) / "lcw" / f"fold-{k:02d}.npz") as z:
                pred[rows] = z["test_probabilities"].argmax(axis=1)
                given = np.array([manifest.utterances[int(i)]["label_index"] for i in z["utterances"]])
                changed += int((z["labels"].argmax(axis=1) != given).sum())
                given_n += len(given)
            info = run.fold_info(0, k)
            epochs.append(sum(h["phase"] == "theta" for h in info["history"]))
            best.append(sum(h["phase"] == "theta" for h in info["history"][: info["best_epoch"]]))
        s = decision_scores(truth, pred, n_classes=len(manifest.classes))
        print(f"| {run.root.name} | {config['update']} | {config.get('warmup', '–')} "
              f"| {config.get('label_confidence', '–')} | {100 * s['wa']:.2f} | {100 * s['ua']:.2f} "
              f"| {100 * s['macro_f1']:.2f} | {' '.join(map(str, epochs))} | {' '.join(map(str, best))} "
              f"| {100 * changed / max(given_n, 1):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    main(parser.parse_args().runs)
