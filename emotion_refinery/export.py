"""Export a round's ensemble as a self-contained model plus a JSON sidecar.

The model maps a ``(batch, segment_frames, n_mels, 1)`` float32 tensor of log-Mel dB
segments (as :func:`emotion_refinery.features.log_mel` and :func:`~emotion_refinery.features.segment`
compute them) to class probabilities ``(batch, K)``; per-band normalisation is inside. The
sidecar holds the feature settings and class names another program needs to reproduce the input.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from emotion_refinery import __version__
from emotion_refinery.errors import EmorefineError
from emotion_refinery.inference import default_round, deployed_choices, ensemble_model
from emotion_refinery.run_dir import load_run
from emotion_refinery.speaker_norm import EPSILON
from tf_records.atomic import atomic_path, write_json

__all__ = ["EXPORT_FORMATS", "export_round"]

EXPORT_FORMATS = ("keras", "savedmodel")


def export_round(run_dir: str | os.PathLike, *, t: int | None = None, fmt: str = "keras",
                 out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write round ``t``'s ensemble (default: :func:`~emotion_refinery.inference.default_round`) to ``out_dir``;
    return (model, sidecar path).

    ``fmt="keras"`` writes ``emorefine-round-RR.keras`` (load with ``keras.models.load_model``, safe mode);
    ``fmt="savedmodel"`` writes a TensorFlow SavedModel folder ``emorefine-round-RR/`` (signature ``serve``).
    """
    if fmt not in EXPORT_FORMATS:
        raise EmorefineError(f"Received: format={fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    run, record, manifest = load_run(run_dir)
    t = default_round(run_dir) if t is None else t
    out = Path(out_dir) if out_dir else run.root / "export"
    out.mkdir(parents=True, exist_ok=True)
    chosen = deployed_choices(run_dir, t)
    model = ensemble_model(run_dir, t, chosen["folds"])
    stem = f"emorefine-round-{t:02d}"
    if fmt == "keras":
        path = out / f"{stem}.keras"
        with atomic_path(path, keep_suffix=True) as tmp:
            model.save(tmp)
    else:
        path = out / stem
        tmp = out / f".{stem}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    f = manifest.features
    speaker_norm = chosen["speaker_norm"]
    sidecar = out / f"{stem}.json"
    write_json(sidecar, {
        "format": fmt,
        "model": path.name,
        "round": t,
        "folds": chosen["folds"],
        "classes": manifest.classes,
        "input": {"shape": [None, f.segment_frames, f.n_mels, 1], "dtype": "float32",
                  "content": "log-Mel power in dB, emotion_refinery.features.log_mel + segment with these settings; "
                             + ("each Mel band first z-normalised by the speaker's own mean and standard deviation "
                                f"over all their frames (std = sqrt(variance + {EPSILON:g})); "
                                if speaker_norm else "") + "normalisation is inside the model"},
        "speaker_norm": speaker_norm,
        "utterance_decision": chosen["utterance_classifier"],
        "output": {"shape": [None, len(manifest.classes)], "content": "class probabilities (mean of the fold models)"},
        "features": f.to_dict(),
        "segment_start_seconds": f"j * {f.segment_hop * f.hop_length} / {f.sr}",
        "run": {"config": record["config"], "records": record["records"]},
        "emorefine_version": __version__,
    })
    return path, sidecar
