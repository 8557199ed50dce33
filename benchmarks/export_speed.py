"""Waveform → decision with an exported model: real-time factor and peak memory per format on this CPU.

    python benchmarks/export_speed.py RUN_DIR --out DIR [--files 40] [--long-seconds 60]

Exports RUN_DIR (``--format all``) into ``DIR/export``, then in one fresh process per format (keras,
savedmodel, tflite, onnx, and ``predict``'s streamed Predictor on the run directory for reference) loads
the model, decides the first ``--files`` Emo-DB utterances (after one warm-up call) and one recording of
``--long-seconds`` (the utterances end to end). Real-time factor = compute time / audio time; peak memory
= the process's maximum resident set (the runtime, the model and the work). Writes the table to
BENCHMARKS.md's ``export-speed`` section.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import EMODB, machine, write_section  # noqa: E402

FORMATS = ("keras", "savedmodel", "tflite", "onnx", "predict")


def _worker(fmt: str, folder: str, run_dir: str, files: list[str], long_seconds: float) -> dict:
    import numpy as np
    import soundfile

    signals = [soundfile.read(f, dtype="float32")[0] for f in files]
    long = np.concatenate(signals * (1 + int(long_seconds * 16000 // sum(map(len, signals)))))
    long = long[: int(long_seconds * 16000)]
    start = time.perf_counter()
    if fmt == "predict":
        from emotion_refinery.outputs.inference import Predictor

        predictor = Predictor(run_dir)
        if predictor.speaker_norm:
            predictor.set_speaker(files)

        def decide(y):
            return predictor.predict(y, sr=16000).probabilities
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
        from use_exported_model import inputs, runner

        (sidecar,) = Path(folder).glob("emorefine-round-*.json")
        meta = json.loads(sidecar.read_text())
        run = runner(folder, meta, fmt)

        def decide(y):
            return run(inputs(meta, y))
    load_s = time.perf_counter() - start
    decide(signals[0])  # warm-up: graph tracing, allocation
    start = time.perf_counter()
    for y in signals:
        decide(y)
    short_s = time.perf_counter() - start
    start = time.perf_counter()
    decide(long)
    long_s = time.perf_counter() - start
    return {"format": fmt, "load_s": load_s, "audio_s": sum(map(len, signals)) / 16000, "compute_s": short_s,
            "long_audio_s": len(long) / 16000, "long_compute_s": long_s,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--long-seconds", type=float, default=60.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    files = sorted(str(p) for p in EMODB.iterdir() if p.suffix in (".wav", ".flac"))[: args.files]
    folder = Path(args.out) / "export"
    if args.worker:
        print(json.dumps(_worker(args.worker, str(folder), args.run_dir, files, args.long_seconds)))
        return
    if not folder.is_dir():
        subprocess.run([sys.executable, "-m", "cli", "export", args.run_dir, "--format", "all", "-o", str(folder)],
                       check=True)
    rows = []
    for fmt in FORMATS:
        done = subprocess.run([sys.executable, __file__, args.run_dir, "--out", args.out, "--files", str(args.files),
                               "--long-seconds", str(args.long_seconds), "--worker", fmt],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    (Path(args.out) / "export_speed.json").write_text(json.dumps(rows, indent=1))
    meta = json.loads(next(folder.glob("emorefine-round-*.json")).read_text())
    lines = [
        "## Waveform → decision with an exported model (`benchmarks/export_speed.py`)",
        "",
        f"{machine()}. Command: `python benchmarks/export_speed.py RUN --out DIR --files {args.files} "
        f"--long-seconds {args.long_seconds:g}`, RUN an Emo-DB run of the recommended CPU command "
        f"(`{meta['run']['config']['backbone']}`, {len(meta['folds'])} fold models, decision "
        f"`{meta['decision']['in_graph']}`, speaker normalisation {'on' if meta['speaker_norm'] else 'off'}). "
        f"One fresh process per format; {args.files} Emo-DB utterances after one warm-up call, then one "
        f"{args.long_seconds:g} s recording. RTF = compute time / audio time (lower is faster); peak = the "
        "process's maximum resident memory. `predict` is the streamed Predictor on the run directory "
        "(one array per call, decided as `predict` decides it), for reference.",
        "",
        "| format | load (s) | RTF, utterances | RTF, one long recording | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['format']} | {r['load_s']:.1f} | {r['compute_s'] / r['audio_s']:.4f} | "
                     f"{r['long_compute_s'] / r['long_audio_s']:.4f} | {r['peak_mib']:.0f} |")
    write_section("export-speed", "\n".join(lines))


if __name__ == "__main__":
    main()
