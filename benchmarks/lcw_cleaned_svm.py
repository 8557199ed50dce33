"""eGeMAPS + SVM fitted on the labels LC+W learned: LC+W as a label cleaner for the classical baseline.

For every test fold k, LC+W's fold model k learned a label for each of its training utterances (all folds
but k and its validation fold k + 1) without seeing fold k. The SVM of fold k is fitted on those labels
instead of the given (noisy) ones, so no label it trains on was learned from its test fold:

    given    the given labels (planted noise included): the `baseline --label-noise P --seed S` figure
    relabel  fold model k's learned label (argmax) for its training utterances; fold k + 1 as given
    filter   the utterances whose learned label left the given one are dropped from fold k's fit

The folds, the flips (the run's --label-noise and --seed) and the true labels the test folds are scored
on are those of each LC+W run; the features are the baseline's cached eGeMAPS functionals
(`baseline-features.npz` of a records folder of the same corpus, matched by utterance id; run
`emorefine baseline RECORDS` once to make them). Seconds per run directory.

    python benchmarks/lcw_cleaned_svm.py FEATURE_RECORDS RUN_DIR [RUN_DIR ...] [--no-speaker-norm] [--no-write]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import machine, seeds_note, spread, write_section

from emotion_refinery.data.label_noise import training_labels
from emotion_refinery.decision.baseline import FEATURES_NAME, make_classifier
from emotion_refinery.decision.utterance import decision_scores, speaker_normalise
from emotion_refinery.methods.lcw import lcw_fold_path
from emotion_refinery.records.run_dir import load_run

VARIANTS = ("given", "relabel", "filter")


def _features(records: Path, ids: list[str]) -> np.ndarray:
    path = records / FEATURES_NAME
    if not path.is_file():
        raise SystemExit(f"Received: {records}; expected a records folder with {FEATURES_NAME} "
                         f"(run `emorefine baseline {records}` first)")
    with np.load(path) as z:
        row = {i: n for n, i in enumerate(z["ids"].tolist())}
        missing = [i for i in ids if i not in row]
        if missing:
            raise SystemExit(f"Received: {len(missing)} utterances without features (e.g. {missing[0]}); "
                             f"expected the records of {records} to hold every utterance of the run")
        return z["features"][[row[i] for i in ids]].astype(np.float64)


def cleaned_svm(feature_records: Path, run: Path, speaker_norm: bool) -> dict:
    """WA / UA / macro-F1 of the SVM per variant, and the share of wrong labels each variant fits on."""
    run_dir, record, manifest = load_run(run)
    settings = record["config"]
    utts = manifest.utterances
    x = _features(feature_records, [u["id"] for u in utts])
    if speaker_norm:
        x = speaker_normalise(x, [u.get("speaker") for u in utts])
    truth = np.array([u["label_index"] for u in utts])
    folds = np.array([u["fold"] for u in utts])
    given = training_labels(manifest, settings.get("label_noise", 0.0), settings.get("seed", 0))
    out = {}
    for variant in VARIANTS:
        predictions, wrong, fitted = np.empty(len(utts), np.int64), 0, 0
        for k in range(manifest.n_folds):
            fit_labels, keep = given.copy(), folds != k
            if variant != "given":
                with np.load(lcw_fold_path(run_dir, k)) as z:
                    rows, learned = z["utterances"].astype(np.int64), z["labels"].argmax(axis=1)
                if variant == "relabel":
                    fit_labels[rows] = learned
                else:
                    keep[rows[learned != given[rows]]] = False
            wrong, fitted = wrong + int((fit_labels[keep] != truth[keep]).sum()), fitted + int(keep.sum())
            predictions[folds == k] = make_classifier().fit(x[keep], fit_labels[keep]).predict(x[folds == k])
        scores = decision_scores(truth, predictions, n_classes=len(manifest.classes))
        out[variant] = {"wa": scores["wa"], "ua": scores["ua"], "macro_f1": scores["macro_f1"],
                        "wrong": wrong / fitted, "fitted": fitted / manifest.n_folds}
    return {"noise": settings.get("label_noise", 0.0), "seed": settings.get("seed", 0),
            "backbone": settings.get("backbone"), "update": settings.get("update"), **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("feature_records", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--speaker-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--no-write", action="store_true", help="print the table; leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    results = [cleaned_svm(args.feature_records, run, args.speaker_norm) for run in args.runs]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["backbone"], r["update"], r["noise"]), []).append(r)
    lines = [
        "## eGeMAPS + SVM on the labels LC+W learned (`benchmarks/lcw_cleaned_svm.py`)", "",
        f"Measured {machine()}, with `python benchmarks/lcw_cleaned_svm.py rec-cpu-loso RUN …` on the LC+W runs "
        "of `benchmarks/emodb_noise.py` (Emo-DB, 10 speaker folds, planted noise; mean ± sd over their seeds): "
        f"the SVM{', speaker-normalised,' if args.speaker_norm else ''} of test fold k fitted on the labels "
        "LC+W's fold model k learned for its training utterances (relabel), or without those whose learned "
        "label left the given one (filter); given: the noisy labels (the baseline's own figure). Wrong: the "
        "share of the fitted labels that are not the true one.", "",
        "| LC+W run | noise | SVM fitted on | WA % | UA % | macro-F1 % | wrong labels fitted "
        "| utterances fitted per fold |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (backbone, update, noise), rs in sorted(groups.items(), key=lambda g: (g[0][0], g[0][2])):
        for variant in VARIANTS:
            wa, ua, f1, wrong = (spread([r[variant][m] for r in rs]) for m in ("wa", "ua", "macro_f1", "wrong"))
            fitted = np.mean([r[variant]["fitted"] for r in rs])
            lines.append(f"| `{backbone}`, `--update {update}`{seeds_note(len(rs))} | {100 * noise:.0f} % | {variant} "
                         f"| {wa} | {ua} | {f1} | {wrong} % | {fitted:.0f} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("lcw-cleaned-svm", body)


if __name__ == "__main__":
    main()
