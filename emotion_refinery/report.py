"""report.json (machine-readable) and report.md (a table like the papers') of a refine run."""

from __future__ import annotations

from typing import Any

from emotion_refinery.run_dir import RunDir
from tf_records.atomic import write_bytes, write_json

__all__ = ["write_reports", "markdown"]


def markdown(report: dict[str, Any]) -> str:
    """The run as Markdown: settings, the per-round table, and the best round's confusion matrix."""
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
        "| round | rule | α | WA (%) | UA (%) | segment acc. (%) | EP entropy | label drift (%) | time (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        alpha = "" if r["alpha"] is None else f"{r['alpha']:g}"
        lines.append(f"| {r['round']} | {r['rule']} | {alpha} | {100 * r['wa']:.2f} | {100 * r['ua']:.2f} | "
                     f"{100 * r['segment_accuracy']:.2f} | {r['ep_entropy']:.3f} | {100 * r['label_drift']:.1f} | "
                     f"{r['seconds']:.0f} |")
    lines += [
        "",
        "WA: utterance accuracy; UA: mean per-class recall (random forest on emotion-profile statistics, "
        "out-of-fold). EP entropy: mean segment entropy / ln K (1 = uniform, the collapse indicator). "
        "Label drift: share of segments whose top class differs from the previous round's training labels.",
    ]
    if rounds:
        best = max(rounds, key=lambda r: (r["ua"], r["wa"]))
        classes = report["classes"]
        lines += ["", f"## Confusion matrix, round {best['round']} (best UA; rows true, columns predicted)", "",
                  "| | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
        for name, row in zip(classes, best["confusion"]):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_reports(run: RunDir, report: dict[str, Any]) -> None:
    write_json(run.report_json, report)
    write_bytes(run.report_md, markdown(report).encode())
