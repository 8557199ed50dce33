"""report.json (machine-readable) and report.md (a table like the papers') of a refine run, and its plots.

:func:`write_reports` is what ``refine`` writes after every round (no plots: matplotlib is not
needed to train). :func:`write_full_report` (``emorefine report``) reads a run's stored arrays,
draws the figures of :mod:`emotion_refinery.outputs.plots` into ``RUN_DIR/plots/`` and rewrites
``report.md`` with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from emotion_refinery.data.features import segment_step
from emotion_refinery.decision.baseline import load_baseline
from emotion_refinery.decision.utterance import ep_entropy
from emotion_refinery.errors import EmorefineError
from emotion_refinery.records.audit import audit_markdown, leakage_audit
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import PLOTS_DIR, RunDir, load_run
from emotion_refinery.util.markdown import markdown_table
from tf_records.atomic import atomic_path, write_bytes, write_json

__all__ = ["write_reports", "markdown", "write_full_report", "default_utterances", "last_round", "chosen_round",
           "best_by_test_ua", "mlee_markdown", "lcw_markdown", "report_markdown", "report_method",
           "confusion_table", "PLOTS_DIR"]



def confusion_table(classes: list[str], confusion: list[list[int]]) -> list[str]:
    """A confusion matrix as markdown: a row per true class, a column per decided class."""
    return markdown_table(["", *classes], [[name, *row] for name, row in zip(classes, confusion)],
                          "l" + "r" * len(classes))


def last_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry of the last finished round: what ``predict`` and ``export`` use by default in runs without
    validation scores (:func:`chosen_round`). No round is chosen by its test-fold accuracy: choosing by it
    would make the chosen figure optimistic."""
    return max(rounds, key=lambda r: r["round"])


def chosen_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round ``predict`` and ``export`` use by default: the round most splits chose on their other folds
    (:func:`emotion_refinery.decision.choices.nested_rounds`; ties: the earlier round). Runs made before per-split
    decisions: the best by validation-fold UA (ties: WA, then the later round); the last round for runs whose
    rounds have no validation scores either."""
    if rounds and all("decision" in r for r in rounds):
        from emotion_refinery.decision.choices import majority, nested_rounds

        picks = nested_rounds([r["decision"]["splits"] for r in rounds])
        return rounds[majority(picks, range(len(rounds)))]
    if any(r.get("validation_ua") is None for r in rounds):
        return last_round(rounds)
    return max(rounds, key=lambda r: (r["validation_ua"], r["validation_wa"], r["round"]))


def best_by_test_ua(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the best UA on the test folds (ties: better WA, then the earlier round).

    Chosen on the test data, so its figures are optimistic; the report shows it labelled as such.
    """
    return max(rounds, key=lambda r: (r["ua"], r["wa"], -r["round"]))


def markdown(report: dict[str, Any]) -> str:
    """The run as Markdown: settings, the per-round table, the last round's confusion matrix, the leakage audit."""
    c = report["config"]
    rounds = report["rounds"]
    lines = [
        "# emorefine refine report",
        "",
        f"Records: `{report['records']['path']}`; protocol: {report['protocol']['protocol']}; "
        f"{report['protocol']['validation']}.",
        f"Backbone `{c['backbone']}`, rule `{c['rule']}` (α {c['alpha']}), {c['epochs']} epochs max, batch "
        f"{c['batch_size']}, Adam lr {c['lr']} ×{c['decay_rate']} every {c['decay_epochs']} epochs, patience "
        f"{c['patience']}, seed {c['seed']}.",
        "",
        "| round | rule | α | WA (%) | UA (%) | macro-F1 (%) | val. WA (%) | val. UA (%) | segment acc. (%) "
        "| EP entropy | label drift (%) | time (s) | decided by |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    percent = lambda v: "" if v is None else f"{100 * v:.2f}"  # noqa: E731 (older runs lack some: blank)
    for r in rounds:
        alpha = "" if r["alpha"] is None else f"{r['alpha']:g}"
        lines.append(f"| {r['round']} | {r['rule']} | {alpha} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | "
                     f"{percent(r.get('macro_f1'))} | {percent(r.get('validation_wa'))} | "
                     f"{percent(r.get('validation_ua'))} | {100 * r['segment_accuracy']:.2f} | "
                     f"{r['ep_entropy']:.3f} | {100 * r['label_drift']:.1f} | {r['seconds']:.0f} | "
                     f"{_decided_by(r, report)} |")
    lines += [
        "",
        "WA: utterance accuracy; UA: mean per-class recall; macro-F1: mean per-class F1 (utterances decided by "
        f"{report['protocol'].get('utterance_classifier', 'random forest on emotion-profile statistics')}, "
        "out-of-fold; UA and macro-F1 over the classes present). EP entropy: mean segment entropy / ln K "
        "(1 = uniform, the collapse indicator). "
        "Label drift: share of segments whose top class differs from the previous round's training labels. "
        "val. WA / UA: each fold's model deciding the utterances of its early-stopping fold by their mean "
        "segment probability, pooled (no test fold involved; shown for comparison). Decided by: the utterance "
        "decision rule, and in how many splits (each split chooses on its other folds, see below).",
    ]
    noisy = [r for r in rounds if r.get("label_noise")]
    if noisy:
        lines += ["", f"Planted noise (`--label-noise {c['label_noise']:g}`): {noisy[0]['label_noise']['flipped']} "
                      "utterances train on another class (training, early stopping, the rules and the utterance "
                      "classifier's training folds see it); WA / UA / macro-F1 are scored on the true labels. "
                      "Training targets whose top class (mean over the utterance's segments) is the true one: "
                      + "; ".join(f"round {r['round']} {100 * r['label_noise']['recovered']:.1f} % of the flipped "
                                  f"utterances, {100 * r['label_noise']['kept']:.1f} % of the others"
                                  for r in noisy) + "."]
    if len(rounds) > 1 and c.get("targets", "oof") == "cross-fit":
        lines += ["", "Refined rounds use cross-fit targets: split k's targets come from two teachers trained on "
                      "halves of its training folds, so no model that shaped them saw fold k (its time column "
                      "includes the teachers)."]
    elif len(rounds) > 1 and c.get("rule") == "lcw":
        lines += ["", "Refined rounds learn from the labels each split's own model learned (rule lcw), so no model "
                      "that shaped split k's targets saw fold k."]
    elif len(rounds) > 1 and c.get("targets", "oof") == "self":
        lines += ["", "Refined rounds use self targets: split k's targets come from split k's own previous model, "
                      "which predicts its training folds (born-again distillation), so no model that shaped them "
                      "saw fold k."]
    elif len(rounds) > 1:
        lines += ["", "Caveat: rounds ≥ 1 are optimistic. Their training targets are the previous round's out-of-fold "
                      "predictions of every fold, and the model that predicted fold j trained on the other folds, the "
                      "held-out fold k of a later split included: round t's model of split k learns from teachers that "
                      "saw fold k's labels (and its validation fold's). Round 0 has no such leak. See README, "
                      "\"The method\"; `--targets cross-fit` or `--targets self` avoids it."]
    if rounds and all(r.get("mean_ep_wa") is not None for r in rounds):
        mean_ep = "; ".join(f"round {r['round']} {100 * r['mean_ep_wa']:.2f} / {100 * r['mean_ep_ua']:.2f} %"
                            for r in rounds)
        lines += ["", "Without the forest (each utterance decided by its mean segment probability), "
                      f"WA / UA: {mean_ep}."]
    for prev, r in zip(rounds, rounds[1:]):
        if r["wa"] < prev["wa"]:
            lines.append(f"Round {r['round']} lowered WA by {100 * (prev['wa'] - r['wa']):.2f} points from round "
                         f"{prev['round']} (UA {100 * (r['ua'] - prev['ua']):+.2f}).")
    flagged = [(r["round"], f) for r in rounds for f in r.get("flagged_folds", [])]
    if flagged:
        lines += ["", "Flagged folds (their model may be broken): " + "; ".join(
            f"round {t} fold {f['fold']}: {', '.join(f['reasons'])}" for t, f in flagged) + "."]
    lines += _choice_lines(report)
    lines += _baseline_lines(report)
    if rounds:
        best, chosen = best_by_test_ua(rounds), chosen_round(rounds)
        how = ("the round most splits chose on their other folds" if "decision" in chosen
               else "the best validation-fold UA" if chosen.get("validation_ua") is not None
               else "the last round; this run has no validation scores")
        lines += ["", f"Best by test-fold UA (chosen on test data; optimistic): round {best['round']}, "
                      f"WA {100 * best['wa']:.2f} %, UA {100 * best['ua']:.2f} %. `predict` and `export` use "
                      f"round {chosen['round']} ({how}; WA {100 * chosen['wa']:.2f} %, UA {100 * chosen['ua']:.2f} % "
                      "on the test folds) unless `--round` is given."]
        classes = report["classes"]
        lines += ["", f"## Confusion matrix, round {chosen['round']} (the round `predict` uses; rows true, columns "
                      "predicted)", ""] + confusion_table(classes, chosen["confusion"])
    if report.get("audit"):  # reports made before the audit have none
        lines += ["", "## Leakage audit", ""] + audit_markdown(report["audit"])
    return "\n".join(lines) + "\n"


def _decided_by(entry: dict[str, Any], report: dict[str, Any]) -> str:
    """``mean-ep 9/10, forest 1/10``: the rules round ``entry``'s splits chose; runs before: the run's rule."""
    if "decision" not in entry:
        return report["config"].get("utterance_classifier", "forest")
    rules = [s["rule"] for s in entry["decision"]["splits"]]
    return ", ".join(f"{r} {rules.count(r)}/{len(rules)}" for r in dict.fromkeys(sorted(rules, key=rules.count,
                                                                                        reverse=True)))


def _choice_lines(report: dict[str, Any]) -> list[str]:
    """How each split's settings were chosen without its test fold, with the evidence (runs before: none)."""
    choices, rounds, selected = report.get("choices"), report["rounds"], report.get("selection")
    if not choices and not selected:
        return []
    lines = ["", "## Choices made without the test fold", ""]
    norm = (choices or {}).get("speaker_norm")
    if norm:
        on, k = sum(norm["splits"]), len(norm["splits"])
        share = norm["confound"]["single_class_share"]
        confound = ("no speaker ids" if share is None else
                    f"{100 * share:.1f} % of the utterances come from the {norm['confound']['single_class_speakers']} "
                    f"of {norm['confound']['speakers']} speakers who show a single class")
        if norm["mode"] == "auto":
            ev = norm["evidence"]
            lines.append(
                f"- Speaker normalisation of the log-Mel bands (`--speaker-norm auto`): on in {on} of {k} splits. "
                "Evidence, per split on its other folds only (leave-one-fold-out UA of an RBF SVM on each utterance's "
                "band means and deviations, without / with per-speaker z-normalisation): "
                + "; ".join(f"split {e['fold']} {100 * e['off']:.1f} / {100 * e['on']:.1f}" for e in ev)
                + f". {confound}.")
        else:
            lines.append(f"- Speaker normalisation of the log-Mel bands: {norm['mode']} (set, not chosen); {confound}.")
    for r in rounds:
        if "decision" not in r:
            continue
        splits = r["decision"]["splits"]
        mean = {rule: np.mean([s["scores"][rule] for s in splits]) for rule in splits[0]["scores"]}
        inner = ", ".join(f"{rule} {100 * v:.1f}" for rule, v in mean.items())
        lines.append(f"- Round {r['round']}, utterance decision rule: {_decided_by(r, report)}; inner UA (mean over "
                     f"splits, each on its other folds): {inner}.")
    if selected:
        lines.append(f"- Round: each split chose the round whose rule scored best on its other folds (rounds "
                     f"{selected['rounds_by_split']} for splits 0–{len(selected['rounds_by_split']) - 1}). Every fold "
                     f"decided by its split's round: **WA {100 * selected['wa']:.2f} %, UA {100 * selected['ua']:.2f} "
                     f"%** — the figure to quote for this run. `predict` and `export` use round {selected['round']}, "
                     "the one most splits chose.")
    return lines


def _baselines(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(row name, baseline.json entry)`` of the baselines made on the run's records manifest (same folds)."""
    runs = report.get("baseline") or {}
    digest = report["records"].get("manifest_sha256")
    config = report.get("config") or {}
    noise = {"share": config["label_noise"], "seed": config.get("seed", 0)} if config.get("label_noise") else None
    names = {False: "baseline: eGeMAPSv02 + SVM", True: "baseline: eGeMAPSv02 + SVM, speaker-normalised"}
    planted = ", the same planted noise" if noise else ""
    # A run with planted noise is compared with the baseline fitted on the same flipped labels, others without.
    return [(f"{names[key.startswith('speaker_norm')]}{planted} (same folds)", runs[key]) for key in sorted(runs)
            if runs[key].get("manifest_sha256") == digest and runs[key].get("label_noise") == noise]


def _baseline_lines(report: dict[str, Any]) -> list[str]:
    """A small table of the baselines beside round 0, and one sentence comparing them; none: no lines."""
    found = _baselines(report)
    if not found:
        return []
    lines = ["", "| model | WA (%) | UA (%) | macro-F1 (%) |", "|---|---:|---:|---:|"]
    for name, b in found:
        lines.append(f"| {name} | {100 * b['wa']:.2f} | {100 * b['ua']:.2f} | {100 * b['macro_f1']:.2f} |")
    r0 = next((r for r in report["rounds"] if r["round"] == 0), None)
    if r0 is None:
        return lines
    f1 = f"{100 * r0['macro_f1']:.2f}" if "macro_f1" in r0 else ""
    lines.append(f"| round 0 (this run) | {100 * r0['wa']:.2f} | {100 * r0['ua']:.2f} | {f1} |")
    selected = report.get("selection")
    if selected and len(report["rounds"]) > 1:
        lines.append(f"| each split's chosen round (this run) | {100 * selected['wa']:.2f} | {100 * selected['ua']:.2f}"
                     f" | {100 * selected['macro_f1']:.2f} |")
    name, b = max(found, key=lambda nb: (nb[1]["wa"], nb[1]["ua"]))
    stronger = "the stronger of the baselines, " if len(found) > 1 else ""
    lines += ["", f"Round 0 vs {stronger}{name.removeprefix('baseline: ')}: WA {100 * (r0['wa'] - b['wa']):+.2f}, "
                  f"UA {100 * (r0['ua'] - b['ua']):+.2f} points (`emorefine baseline` on the same records)."]
    return lines


def write_reports(run: RunDir, report: dict[str, Any]) -> None:
    write_json(run.report_json, report)
    write_bytes(run.report_md, markdown(report).encode())


# --- the full report: plots ---------------------------------------------------------------------


def default_utterances(manifest: RecordsManifest) -> list[str]:
    """The utterances whose emotion profiles the report draws when none are named: one per class.

    For each class (in class order), the utterance of that class whose segment count is closest to the
    median segment count of the class; ties go to the first in manifest order. The choice depends on
    the records only, not on any model, so every run on the same records shows the same utterances,
    and a typical-length utterance gives a readable profile.
    """
    chosen = []
    for c in range(len(manifest.classes)):
        members = [u for u in manifest.utterances if u["label_index"] == c]
        if not members:
            continue
        median = float(np.median([u["segments"] for u in members]))
        chosen.append(min(members, key=lambda u: abs(u["segments"] - median))["id"])  # min keeps the first of ties
    return chosen


def _check_utterances(manifest: RecordsManifest, utterances: list[str]) -> list[str]:
    known = {u["id"] for u in manifest.utterances}
    unknown = [uid for uid in utterances if uid not in known]
    if unknown:
        raise EmorefineError(f"Received: utterance={', '.join(map(repr, unknown))}; no utterance of "
                             f"{manifest.root} has {'that id' if len(unknown) == 1 else 'these ids'} "
                             f"(ids look like {manifest.utterances[0]['id']!r})")
    return list(dict.fromkeys(utterances))  # each once, in the order given


def _file_stem(uid: str, taken: set[str], index: int) -> str:
    stem = "ep-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", uid).strip("._-") or str(index))
    if stem in taken:  # two ids that differ only in characters a file name cannot hold
        stem = f"{stem}-{index}"
    taken.add(stem)
    return stem


def _round_name(entry: dict[str, Any]) -> str:
    alpha = "" if entry["alpha"] is None else f", α {entry['alpha']:g}"
    trained = "utterance labels" if entry["round"] == 0 else f"{entry['rule']}{alpha} labels"
    return f"round {entry['round']}: trained on {trained}"


def _draw(path: Path, draw, *args, **kwargs) -> Path:
    """Write one figure under a temporary name and rename it into place."""
    with atomic_path(path, keep_suffix=True) as tmp:
        draw(*args, tmp, **kwargs)
    return path


def lcw_markdown(report: dict) -> str:
    """report.md of an LC+W run."""
    c, classes = report["config"], report["classes"]
    lines = [
        "# emorefine lcw report", "",
        f"Records: `{report['records']['path']}`; protocol: {report['protocol']['protocol']}; "
        f"{report['protocol']['validation']}.",
        f"Backbone `{c['backbone']}`, update `{c['update']}`, {c['epochs']} epochs max (alternating), batch "
        f"{c['batch_size']}, Adam lr {c['lr']} (labels and weights {c['label_lr']}), patience {c['patience']}, "
        f"seed {c['seed']}.", "",
        "| WA (%) | UA (%) | macro-F1 (%) | time (s) |", "|---:|---:|---:|---:|",
        f"| {100 * report['wa']:.2f} | {100 * report['ua']:.2f} | {100 * report['macro_f1']:.2f} | "
        f"{report['seconds']:.0f} |", "",
        "Learned labels (rows: given, columns: learned; share of training labels, pooled over the fold models):", "",
        "| given \\ learned | " + " | ".join(classes) + " | mean weight |",
        "|---|" + "---:|" * (len(classes) + 1),
    ]
    for name, row, w in zip(classes, report["label_change"], report["mean_weight"]):
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in row) + f" | {w:.3f} |")
    noise = report.get("label_noise")
    if noise:
        lines += ["", f"Planted noise: {100 * noise['share']:.0f} % of the utterances trained on another label "
                  f"({noise['flipped_pairs']} (utterance, fold model) pairs); the learned label is the true one for "
                  f"{100 * noise['recovered']:.1f} % of those, and {100 * noise['kept']:.1f} % of the correctly "
                  "labelled pairs kept their label."]
    changed = report["changed"]
    lines += ["", f"{len(changed)} (utterance, fold model) pairs whose learned label left the given one"
              + (", the 20 most confident:" if changed else "."), ""]
    if changed and noise:  # planted noise: the true label beside the one training saw
        lines += ["| utterance | fold model | given | learned | true | p | weight |",
                  "|---|---:|---|---|---|---:|---:|"]
        lines += [f"| {r['id']} | {r['fold_model']} | {r['given']} | {r['learned']} | {r.get('true', r['given'])} | "
                  f"{r['probability']:.3f} | {r['weight']:.3f} |" for r in changed[:20]]
    elif changed:
        lines += ["| utterance | fold model | given | learned | p | weight |", "|---|---:|---|---|---:|---:|"]
        lines += [f"| {r['id']} | {r['fold_model']} | {r['given']} | {r['learned']} | {r['probability']:.3f} | "
                  f"{r['weight']:.3f} |" for r in changed[:20]]
    lines += ["", "Confusion matrix (rows: true, columns: decided):", "",
              *confusion_table(classes, report["confusion"])]
    return "\n".join(lines) + "\n"


def mlee_markdown(report: dict) -> str:
    """report.md of an MLEE run."""
    c, classes, e = report["config"], report["classes"], report["existence"]
    lines = [
        "# emorefine mlee report", "",
        f"Records: `{report['records']['path']}`; protocol: {report['protocol']['protocol']}; "
        f"{report['protocol']['validation']}; {report['voted_utterances']} of {sum(map(sum, report['confusion']))} "
        "utterances carry votes.",
        f"Backbone `{c['backbone']}`, variant `{c['variant']}`, at most {c['epochs']} epochs per model, batch "
        f"{c['batch_size']}, Adam lr {c['lr'] or 'as published'}, patience {c['patience']}, seed {c['seed']}."
        + (" Frames z-normalised per speaker (`--speaker-norm`)." if c.get("speaker_norm") else "")
        + (" Speeds 0.9 / 1.0 / 1.1 (`--speed-perturb`)." if c.get("speed_perturb") else "")
        + (f" The MLEE model also trained on the {report['vote_only_utterances']} unlabelled utterances (no "
           "majority; `--train-on all`) of its training folds." if report.get("vote_only_utterances") else ""), "",
        "| WA (%) | UA (%) | macro-F1 (%) | existence macro-F1 (%) | time (s) |", "|---:|---:|---:|---:|---:|",
        f"| {100 * report['wa']:.2f} | {100 * report['ua']:.2f} | {100 * report['macro_f1']:.2f} | "
        f"{100 * e['macro_f1']:.2f} | {report['seconds']:.0f} |", "",
        "Emotion existence (truth: any annotator chose the class; predicted: "
        + ("sigmoid output above 0.5" if c["variant"] == "mlee" else "probability at least 1/K") + "):", "",
        "| class | precision (%) | recall (%) | F1 (%) | utterances present |", "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | {100 * v['precision']:.1f} | {100 * v['recall']:.1f} | {100 * v['f1']:.1f} | "
              f"{v['support']} |" for name, v in e["per_class"].items()]
    lines += ["", "Confusion matrix (rows: true, columns: decided):", "",
              *confusion_table(classes, report["confusion"])]
    return "\n".join(lines) + "\n"


def _write_mlee_report(run, report: dict) -> list[Path]:
    from emotion_refinery.outputs import plots

    out = run.plots
    out.mkdir(exist_ok=True)
    written = [plots.confusion_matrix(np.array(report["confusion"]), report["classes"], out / "confusion.png",
                                      title=f"Confusion matrix, MLEE {report['config']['variant']} (out-of-fold)")]
    text = mlee_markdown(report) + "\n" + "\n".join(f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in written) + "\n"
    write_bytes(run.report_md, text.encode())
    return [*written, run.report_md]


def _write_lcw_report(run, report: dict) -> list[Path]:
    """An LC+W run's figures (learned labels and weights; confusion matrix) and its report.md with them."""
    from emotion_refinery.outputs import plots

    out = run.plots
    out.mkdir(exist_ok=True)
    written = [plots.learned_labels(np.array(report["label_change"]), report["mean_weight"], report["classes"],
                                    out / "learned-labels.png"),
               plots.confusion_matrix(np.array(report["confusion"]), report["classes"], out / "confusion.png",
                                      title="Confusion matrix, LC+W (out-of-fold)")]
    text = lcw_markdown(report) + "\n" + "\n".join(f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in written) + "\n"
    write_bytes(run.report_md, text.encode())
    return [*written, run.report_md]


def write_full_report(run_dir, utterances: list[str] | None = None) -> list[Path]:
    """Draw a run's figures into ``RUN_DIR/plots/`` and rewrite ``report.md`` with them.

    Figures: WA/UA per round (``accuracy.png``); the confusion matrix of the last round, counts
    and row-normalised (``confusion-round-RR.png``); label drift between consecutive rounds' training
    labels by class of the utterance label (``label-drift.png``, from two rounds on); mean EP entropy
    per round (``entropy.png``); and the emotion profile of each utterance in every round
    (``ep-ID.png``). PNGs in ``plots/`` that this call did not write (profiles of utterances chosen
    before) are removed.

    Args:
        run_dir: a run directory (or its :class:`~emotion_refinery.records.run_dir.OpenRun`) with a finished
            round; an ``lcw`` or ``mlee`` run gets its own figures (``utterances`` is for ``refine`` runs).
        utterances: ids whose emotion profiles to draw; ``None`` or empty: :func:`default_utterances`.

    Returns:
        The paths written: the PNGs, then ``report.md``.
    """
    opened = load_run(run_dir)
    report = opened.report()
    return _FULL_REPORTS[report_method(report)](opened, report, utterances)


def _write_refine_report(opened, report: dict, utterances: list[str] | None) -> list[Path]:
    from emotion_refinery.outputs import plots

    run, manifest = opened.run, opened.manifest
    report["baseline"] = load_baseline(manifest.root)  # a baseline run after refine counts too
    report.setdefault("audit", leakage_audit(manifest.utterances, manifest.n_folds))  # runs made before the audit
    chosen = _check_utterances(manifest, list(utterances)) if utterances else default_utterances(manifest)
    rounds = report["rounds"]
    classes = report["classes"]
    k_classes = len(classes)
    ts = [r["round"] for r in rounds]
    table = manifest.segment_table()
    labels = table["label"]
    out = run.plots
    written: list[Path] = []
    sections: list[str] = []

    base = next(((b["wa"], b["ua"]) for _, b in _baselines(report)), None)  # plain before speaker_norm
    written.append(_draw(out / "accuracy.png", plots.accuracy_curve, ts, [r["wa"] for r in rounds],
                         [r["ua"] for r in rounds], segment_accuracy=[r["segment_accuracy"] for r in rounds],
                         n_classes=k_classes, baseline=base))
    sections += ["### Accuracy per round", "", f"![WA and UA per round]({PLOTS_DIR}/accuracy.png)", ""]

    shown = chosen_round(rounds)
    name = f"confusion-round-{shown['round']:02d}.png"
    written.append(_draw(out / name, plots.confusion_matrix, np.asarray(shown["confusion"]), classes,
                         title=f"Round {shown['round']} (the round `predict` uses, UA {100 * shown['ua']:.1f} %): "
                               "utterance-level confusion, out-of-fold"))
    sections += [f"### Confusion matrix, round {shown['round']} (the round `predict` uses)", "",
                 f"![Confusion matrix of round {shown['round']}]({PLOTS_DIR}/{name})", ""]

    # Segment-level arrays, one round at a time: EP entropy, the chosen utterances' profiles, top training labels.
    entropy, entropy_by_class, profiles, top = [], [], {uid: [] for uid in chosen}, []
    utts = {uid: manifest.utterance(uid) for uid in chosen}
    for t in ts:
        q = run.load_predictions(t, manifest)
        h = ep_entropy(q)
        entropy.append(float(h.mean()))
        entropy_by_class.append([float(h[labels == c].mean()) if np.any(labels == c) else np.nan
                                 for c in range(k_classes)])
        for uid, u in utts.items():
            profiles[uid].append(q[u["first_segment"]:u["first_segment"] + u["segments"]])
        if len(ts) > 1:
            top.append(run.load_targets(t, manifest).argmax(axis=1))

    if len(ts) > 1:
        changed = [top[i] != top[i - 1] for i in range(1, len(ts))]
        drift = np.array([[float(ch[labels == c].mean()) if np.any(labels == c) else 0.0 for c in range(k_classes)]
                          for ch in changed])
        written.append(_draw(out / "label-drift.png", plots.label_drift, drift, classes,
                             transitions=[f"round {ts[i - 1]} → {ts[i]}" for i in range(1, len(ts))],
                             overall=[float(ch.mean()) for ch in changed]))
        sections += ["### Label drift", "", "Share of segments whose top training label changed from one round "
                     "to the next, by the class of their utterance's label (round 1's labels against the "
                     "utterance labels round 0 trained on).", "",
                     f"![Label drift between consecutive rounds]({PLOTS_DIR}/label-drift.png)", ""]
    else:
        sections += ["### Label drift", "", "Needs two rounds; this run has one.", ""]

    written.append(_draw(out / "entropy.png", plots.ep_entropy, ts, entropy,
                         per_class=np.array(entropy_by_class), classes=classes))
    sections += ["### Emotion-profile entropy per round", "",
                 f"![Mean EP entropy per round]({PLOTS_DIR}/entropy.png)", ""]

    f = manifest.features
    step = segment_step(f)
    how = ("the utterances named with `--utterance`" if utterances else
           "one utterance per class: the one whose segment count is closest to its class's median "
           "(ties: the first in manifest order)")
    sections += ["### Emotion profiles across rounds", "",
                 f"Out-of-fold class probabilities of every segment of {how}. Segment j starts at "
                 f"j × {1000 * step:g} ms (segment hop {f.segment_hop} frames × {f.hop_length} samples / "
                 f"{f.sr} Hz) and lasts {1000 * f.segment_seconds:.0f} ms.", ""]
    taken: set[str] = set()
    for uid in chosen:
        u = utts[uid]
        stem = _file_stem(uid, taken, u["index"])
        names = []
        for entry, q in zip(rounds, profiles[uid]):
            mean = q.mean(axis=0)
            names.append(f"{_round_name(entry)} — mean EP: {classes[int(mean.argmax())]} {mean.max():.2f}")
        written.append(_draw(out / f"{stem}.png", plots.emotion_profile_evolution, profiles[uid], classes,
                             seconds_per_segment=step, utterance_id=uid, label=u["label"], round_names=names))
        sections += [f"#### {uid} (label {u['label']}, {u['segments']} segments, fold {u['fold']})", "",
                     f"![Emotion profile of {uid}]({PLOTS_DIR}/{stem}.png)", ""]

    for stale in set(out.glob("*.png")) - set(written):
        stale.unlink()
    text = markdown(report) + "\n## Plots\n\nDrawn by `emorefine report` (`emorefine refine` rewrites this file " \
        "without them).\n\n" + "\n".join(sections)
    write_bytes(run.report_md, text.encode())
    return written + [run.report_md]


#: How each method's report.json is drawn (``emorefine report``): the one dispatch on ``report["method"]``.
_FULL_REPORTS = {"refine": _write_refine_report, "lcw": lambda opened, report, _: _write_lcw_report(opened.run, report),
                 "mlee": lambda opened, report, _: _write_mlee_report(opened.run, report)}
_MARKDOWN = {"refine": markdown, "lcw": lcw_markdown, "mlee": mlee_markdown}


def report_method(report: dict) -> str:
    """The command that made a report: ``refine`` (reports without ``method``), ``lcw`` or ``mlee``."""
    return report.get("method", "refine")


def report_markdown(report: dict) -> str:
    """report.md's text (without plots) of any run's report.json."""
    return _MARKDOWN[report_method(report)](report)
