"""The figures of ``emorefine report``: one function per figure, plain data in, a PNG out.

Every function takes arrays, lists and class names (nothing of a run directory), writes one PNG
with matplotlib's Agg backend (no display needed) to ``path`` and returns ``path``. Classes keep
the same colour in every figure (matplotlib's ``tab10`` cycle by class index). Figures are closed
after saving, so a report of many utterances does not accumulate open figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

__all__ = ["class_colors", "accuracy_curve", "confusion_matrix", "emotion_profile_evolution", "label_drift",
           "ep_entropy"]

DPI = 120
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.titlesize": 12}


def class_colors(n_classes: int) -> list:
    """One colour per class index, the same in every figure."""
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n_classes)]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def _round_ticks(ax, rounds: Sequence[int]) -> None:
    ax.set_xticks(list(rounds))
    ax.set_xlim(min(rounds) - 0.3, max(rounds) + 0.3)


def accuracy_curve(
    rounds: Sequence[int],
    wa: Sequence[float],
    ua: Sequence[float],
    path: str | os.PathLike,
    *,
    segment_accuracy: Sequence[float] | None = None,
    n_classes: int | None = None,
    baseline: tuple[float, float] | None = None,
) -> Path:
    """Utterance-level WA and UA (fractions in [0, 1]) per round, optionally segment accuracy and UA chance level.

    ``baseline``: ``(wa, ua)`` fractions of a baseline on the same folds, drawn as two dashed horizontal lines.

    The round with the best UA is marked, labelled as chosen on the test folds (an optimistic figure).
    """
    rounds = list(rounds)
    wa, ua = 100 * np.asarray(wa, float), 100 * np.asarray(ua, float)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.4, 4.0), layout="constrained")
        ax.plot(rounds, wa, "o-", color="tab:blue", ms=8, label="WA (utterance accuracy)")
        ax.plot(rounds, ua, "s-", color="tab:orange", ms=5, label="UA (mean per-class recall)")
        if segment_accuracy is not None:
            ax.plot(rounds, 100 * np.asarray(segment_accuracy, float), "^--", color="tab:gray",
                    label="segment accuracy vs utterance label")
        if n_classes:
            ax.axhline(100 / n_classes, color="black", lw=0.8, ls=":", label=f"chance UA ({100 / n_classes:.0f} %)")
        if baseline is not None:
            for value, color, name in zip(baseline, ("tab:blue", "tab:orange"), ("WA", "UA")):
                ax.axhline(100 * value, color=color, lw=1, ls="--", label=f"baseline {name} ({100 * value:.1f} %)")
        best = int(np.argmax(ua))
        ax.plot([rounds[best]], [ua[best]], "o", ms=17, mfc="none", mec="tab:red", mew=2, zorder=5,
                label=f"best by test-fold UA: round {rounds[best]} ({ua[best]:.1f} %;\n"
                      "chosen on test data, optimistic)")
        _round_ticks(ax, rounds)
        ax.set_ylim(0, 102)
        ax.set_xlabel("round (0 = trained on utterance labels)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Utterance-level accuracy per round (out-of-fold)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return _save(fig, path)


def confusion_matrix(
    confusion: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Two panels: the counts ``confusion`` ``(K, K)`` (rows true, columns predicted) and the row-normalised %."""
    counts = np.asarray(confusion, dtype=np.int64)
    k = len(classes)
    totals = counts.sum(axis=1, keepdims=True)
    share = 100 * counts / np.maximum(totals, 1)
    side = max(3.2, 0.55 * k + 1.6)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.4, side + 0.4), layout="constrained")
        fig.get_layout_engine().set(wspace=0.06)
        panels = [(counts, "counts (utterances)", "Blues", "{:d}"), (share, "row-normalised (% of true class)",
                                                                      "Greens", "{:.0f}")]
        for ax, (values, name, cmap, fmt) in zip(axes, panels):
            vmax = 100 if values is share else max(int(values.max()), 1)
            image = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax)
            for i in range(k):
                for j in range(k):
                    v = values[i, j]
                    ax.text(j, i, fmt.format(int(v) if values is counts else v), ha="center", va="center",
                            fontsize=9 if k <= 8 else 7, color="white" if v > 0.6 * vmax else "black")
            ax.set_xticks(range(k), classes, rotation=35, ha="right", rotation_mode="anchor")
            ax.set_yticks(range(k), classes)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            ax.set_title(name)
            fig.colorbar(image, ax=ax, shrink=0.8, label="utterances" if values is counts else "% of row")
        fig.suptitle(title)
        return _save(fig, path)


def learned_labels(
    label_change: np.ndarray,
    mean_weight: Sequence[float],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "LC+W: learned labels and contribution weights",
) -> Path:
    """Two panels: the share of training labels moved from each given class (rows) to each learned class
    (columns), in %, and the mean learned contribution weight per given class."""
    share = 100 * np.asarray(label_change, dtype=float)
    k = len(classes)
    side = max(3.2, 0.55 * k + 1.6)
    with plt.rc_context(STYLE):
        fig, (ax, bar) = plt.subplots(1, 2, figsize=(2 * side + 1.4, side + 0.4), layout="constrained")
        image = ax.imshow(share, cmap="Greens", vmin=0, vmax=100)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=9 if k <= 8 else 7,
                        color="white" if share[i, j] > 60 else "black")
        ax.set_xticks(range(k), classes, rotation=35, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("learned label")
        ax.set_ylabel("given label")
        ax.set_title("labels (% of given class)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="% of row")
        bar.bar(range(k), mean_weight, color=class_colors(k))
        bar.axhline(1.0, color="0.4", lw=0.8, ls="--")
        bar.set_xticks(range(k), classes, rotation=35, ha="right", rotation_mode="anchor")
        bar.set_ylabel("mean learned weight w")
        bar.set_title("weight by given class (larger counts less)")
        fig.suptitle(title)
        return _save(fig, path)


def emotion_profile_evolution(
    profiles: Sequence[np.ndarray],
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    seconds_per_segment: float,
    utterance_id: str,
    label: str,
    round_names: Sequence[str] | None = None,
) -> Path:
    """An utterance's emotion profile in every round: one panel per round, one line per class.

    Args:
        profiles: per round, the EP ``(n_segments, K)`` (class probabilities of each segment).
        seconds_per_segment: time between segment starts (``segment_hop * hop_length / sr``);
            segment ``j`` is drawn at ``j * seconds_per_segment``.
        utterance_id, label: named in the title; the line of the labelled class is drawn thicker.
        round_names: panel titles (default ``round t``).
    """
    n = len(profiles)
    names = list(round_names) if round_names is not None else [f"round {t}" for t in range(n)]
    colors = class_colors(len(classes))
    ncols = 1 if n <= 4 else 2
    nrows = math.ceil(n / ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(7.2 * ncols, 1.25 + 1.75 * nrows), sharex=True,
                                 sharey=True, squeeze=False, layout="constrained")
        for t, ax in enumerate(axes.flat):
            if t >= n:
                ax.set_visible(False)
                continue
            q = np.asarray(profiles[t], dtype=float)
            time = np.arange(len(q)) * seconds_per_segment
            for c, name in enumerate(classes):
                own = name == label
                ax.plot(time, q[:, c], color=colors[c], lw=2.4 if own else 1.2, marker="." if len(q) < 40 else None,
                        label=f"{name} (label)" if own else name, zorder=3 if own else 2)
            ax.set_ylim(-0.03, 1.03)
            ax.set_yticks([0, 0.5, 1])
            ax.grid(alpha=0.3)
            ax.set_title(names[t], loc="left")
            if t % ncols == 0:
                ax.set_ylabel("probability")
        for c in range(ncols):  # the lowest visible panel of each column (a 2-column grid may end in a gap)
            visible = [ax for ax in axes[:, c] if ax.get_visible()]
            visible[-1].set_xlabel("segment start (s)")
            visible[-1].tick_params(labelbottom=True)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", title="class")
        fig.suptitle(f"Emotion profile of {utterance_id} (label: {label}) across rounds")
        return _save(fig, path)


def label_drift(
    drift: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    transitions: Sequence[str],
    overall: Sequence[float] | None = None,
) -> Path:
    """Grouped bars: share of segments whose top class changed between consecutive rounds' training labels.

    Args:
        drift: ``(n_transitions, K)`` fractions in [0, 1], by the class of the segment's utterance label.
        transitions: one name per row of ``drift`` (``"round 0 → 1"``).
        overall: per transition, the share over all segments (drawn as an extra group ``all``).
    """
    drift = 100 * np.asarray(drift, dtype=float)
    groups = list(classes)
    if overall is not None:
        drift = np.concatenate([drift, 100 * np.asarray(overall, float)[:, None]], axis=1)
        groups.append("all segments")
    n_t, n_g = drift.shape
    width = 0.8 / n_t
    cmap = plt.get_cmap("viridis")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(min(13.0, max(6.4, 2.6 + 0.28 * n_t * n_g + 0.3 * n_g)), 4.2),
                               layout="constrained")
        x = np.arange(n_g)
        for i in range(n_t):
            bars = ax.bar(x - 0.4 + width * (i + 0.5), drift[i], width, label=transitions[i],
                          color=cmap(i / max(n_t - 1, 1) * 0.85))
            if n_t * n_g <= 40:
                ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=1)
        ax.set_xticks(x, groups, rotation=20 if n_g > 6 else 0, ha="right" if n_g > 6 else "center")
        ax.set_xlabel("class of the utterance label")
        ax.set_ylabel("segments whose top label changed (%)")
        ax.set_ylim(0, max(10.0, float(drift.max()) * 1.18))
        ax.set_title("Label drift between consecutive rounds' training labels")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="training labels", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return _save(fig, path)


def ep_entropy(
    rounds: Sequence[int],
    entropy: Sequence[float],
    path: str | os.PathLike,
    *,
    per_class: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> Path:
    """Mean emotion-profile entropy / ln K per round (1 = uniform), optionally per class of the utterance label.

    Args:
        entropy: per round, the mean normalised entropy over all segments.
        per_class: ``(n_rounds, K)``, the same mean over the segments of each class's utterances.
    """
    rounds = list(rounds)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        if per_class is not None:
            colors = class_colors(len(classes))
            for c, name in enumerate(classes):
                ax.plot(rounds, np.asarray(per_class)[:, c], ".-", color=colors[c], lw=1.2, alpha=0.9, label=name)
        ax.plot(rounds, entropy, "o-", color="black", lw=2.4, label="all segments")
        ax.axhline(1.0, color="tab:red", lw=1, ls="--", label="uniform EP (collapse)")
        _round_ticks(ax, rounds)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("round")
        ax.set_ylabel("mean EP entropy / ln K")
        ax.set_title("Emotion-profile entropy per round (0 = one-hot, 1 = uniform)")
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="utterance label")
        return _save(fig, path)
