"""Shared fixtures: tiny synthetic audio and corpora written to temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the command line sets it

import numpy as np
import pytest
import soundfile

SR = 16000


def tone(freq: float, seconds: float, *, sr: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path, y, sr: int = SR, subtype: str = "PCM_16") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, y, sr, subtype=subtype)
    return str(path)


@pytest.fixture
def emodb_dir(tmp_path):
    """Twelve tiny utterances named like Emo-DB: 3 speakers x 4 emotions, 0.6-0.9 s of tones."""
    root = tmp_path / "emodb"
    rng = np.random.default_rng(1)
    for s, speaker in enumerate(("03", "08", "11")):
        for e, letter in enumerate("WLFN"):
            y = tone(200 + 300 * e + 50 * s, 0.6 + 0.1 * e) + 0.01 * rng.standard_normal(int((0.6 + 0.1 * e) * SR))
            write_wav(root / f"{speaker}a0{e + 1}{letter}a.wav", y.astype(np.float32))
    return root


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """The package's synthetic corpus, 4 utterances per class (16 files), made once per session."""
    from emotion_refinery.data.synthetic import make_corpus

    root = tmp_path_factory.mktemp("synthetic")
    manifest = make_corpus(root, per_class=4, seed=3)
    return root, manifest


@pytest.fixture(scope="session")
def finished_run(synthetic_corpus, tmp_path_factory):
    """A 2-round refine run (small backbone, 1 epoch, 3 folds, segment hop 8) on the synthetic corpus."""
    from emotion_refinery.data.feature_config import FeatureConfig
    from emotion_refinery.records.build import build_records
    from emotion_refinery.refine.rounds import refine
    from emotion_refinery.refine.settings import resolve_config

    root, csv = synthetic_corpus
    base = tmp_path_factory.mktemp("finished-run")
    records, run = base / "records", base / "run"
    build_records(root, records, manifest=csv, features=FeatureConfig(segment_hop=8), n_folds=3, workers=1)
    refine(records, run, resolve_config(backbone="small", rounds=2, epochs=1, batch_size=64, preset="fast",
                                        targets="oof"),
           verbose=0, log=lambda s: None, verify=False)
    return run


#: Fixtures that train Keras models or run openSMILE: every test that uses one (directly or through another
#: fixture) is marked slow, so that `make test-fast` (-m "not slow") skips it.
SLOW_FIXTURES = {"finished_run", "main_run", "quick_run", "cli_run", "run", "opensmile"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
