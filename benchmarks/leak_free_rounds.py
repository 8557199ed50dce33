"""Leak-free refinement on the development corpora: the recommended CPU command with refined rounds.

For each corpus and kind of targets, the runs ``run-{corpus}-{targets}-s{seed}`` under --out (made by
`refine REC -o RUN --seed S --rounds R --targets T` on the records of `benchmarks/dev_corpora.py`; round 0
may be copied from that script's runs, since round 0 does not depend on the targets). The table gives mean ±
sd over seeds of: round 0, each refined round (each fold decided by the rule its split chose on round 0),
the figure of each split's chosen round (what report.md tells you to quote), the round `predict` uses
(the one most splits chose) with its WA against round 0's, and the cost of a refined round relative to round 0
(training time, teachers included).

    python benchmarks/leak_free_rounds.py [--out DIR] [--corpora emodb,urdu] [--targets self,cross-fit,oof]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import REPO, machine, seed_runs, spread, write_section


def table(out: Path, corpora: list[str], kinds: list[str]) -> str:
    lines = ["| corpus, speaker folds | targets | seeds | round 0 | refined rounds (WA, each split's rule) | "
             "each split's chosen round | `predict`'s round per seed (its WA − round 0's) | round 0 → chosen | "
             "refined round's cost |",
             "|---|---|---:|---:|---|---:|---|---:|---:|"]
    for corpus in corpora:
        for kind in kinds:
            runs = [r for r in seed_runs(out, f"run-{corpus}-{kind}-s") if (r / "report.json").is_file()]
            reports = [json.loads((r / "report.json").read_text()) for r in runs]
            reports = [rep for rep in reports if len(rep["rounds"]) > 1]
            if not reports:
                continue
            n_rounds = min(len(rep["rounds"]) for rep in reports)
            r0 = [rep["rounds"][0]["wa"] for rep in reports]
            refined = "; ".join(f"{t}: {spread([rep['rounds'][t]['wa'] for rep in reports])}"
                                for t in range(1, n_rounds))
            chosen = [rep["selection"]["wa"] for rep in reports]
            cost = np.mean([rep["rounds"][t]["seconds"] / rep["rounds"][0]["seconds"]
                            for rep in reports for t in range(1, n_rounds)])
            picks = ", ".join(
                f"{rep['selection']['round']} "
                f"({100 * (rep['rounds'][rep['selection']['round']]['wa'] - rep['rounds'][0]['wa']):+.2f})"
                for rep in reports)
            gain = 100 * (np.mean(chosen) - np.mean(r0))
            lines.append(f"| {corpus} | {kind} | {len(reports)} | {spread(r0)} | {refined} | {spread(chosen)} | "
                         f"{picks} | {gain:+.2f} | {cost:.1f}× |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench-out" / "dev-corpora")
    p.add_argument("--corpora", default="emodb,urdu")
    p.add_argument("--targets", default="self,cross-fit,oof")
    args = p.parse_args()
    body = table(args.out, args.corpora.split(","), args.targets.split(","))
    print(body)
    command = " ".join(["python benchmarks/leak_free_rounds.py", *__import__("sys").argv[1:]])
    write_section("leak-free-rounds", "## Leak-free refined rounds on both development corpora\n\n"
                  f"Measured {machine()}, with `{command}` (WA %).\n\n{body}\n")


if __name__ == "__main__":
    main()
