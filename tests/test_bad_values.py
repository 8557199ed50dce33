"""Every command refuses bad values before any work: exit status 1 or 2, the value named in the house form
("Received: rounds=1000000000000; expected an integer in [1, 100]"), no traceback, nothing written.

One records folder (a tiny synthetic corpus, no training) serves the module. The table below walks every numeric
option of every command just outside its range (and NaN for the numbers); the hand-made rows cover the checks
that need more than one value or the records (``--freq-shift`` against the records' bands, ``--min-epochs``
against ``--epochs``), unreadable inputs and outputs that cannot be written.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.main import main
from cli.options import BoundedFloat, BoundedInt
from emotion_refinery.errors import EmorefineError
from emotion_refinery.util.ranges import SEED, Range


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    """Records of the 16-file synthetic corpus: 3 folds, 64 Mel bands, segment hop 16."""
    from emotion_refinery.data.feature_config import FeatureConfig
    from emotion_refinery.records.build import build_records

    root, csv = synthetic_corpus
    out = tmp_path_factory.mktemp("bad-values") / "records"
    build_records(root, out, manifest=csv, features=FeatureConfig(segment_hop=16), n_folds=3, workers=1)
    return out


@pytest.fixture
def place(tmp_path, records, synthetic_corpus):
    """Names for the arguments of every command; ``out``, ``out.json`` and the like do not exist yet."""
    root, csv = synthetic_corpus
    run = tmp_path / "run"  # a folder: predict and export check their inputs before they read a run
    run.mkdir()
    wav = sorted((root / "wav").iterdir())[0]
    return {"records": str(records), "corpus": str(root), "manifest": str(csv), "run": str(run), "wav": str(wav),
            "out": str(tmp_path / "out"), "file": str(tmp_path / "out.json"), "tmp": tmp_path}


#: The arguments every command needs besides the option under test.
BASE = {
    "build-records": ["{corpus}", "--manifest", "{manifest}", "-o", "{out}"],
    "inspect": ["{records}"],
    "synth-corpus": ["{out}"],
    "refine": ["{records}", "-o", "{out}"],
    "baseline": ["{records}"],
    "lcw": ["{records}", "-o", "{out}"],
    "mlee": ["{records}", "-o", "{out}"],
    "predict": ["{run}", "{wav}", "-o", "{file}"],
    "export": ["{run}", "-o", "{out}"],
}


def _args(template, place):
    return [a.format(**{k: v for k, v in place.items() if isinstance(v, str)}) for a in template]


def _bounded_options():
    """(command, flag, range) of every numeric option of every command."""
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param.type, (BoundedInt, BoundedFloat)):
                yield name, max(param.opts, key=len), param.type.range


def _outside(r: Range) -> list[str]:
    """Values just outside ``r`` (and NaN for numbers), as typed on a command line."""
    if r.integer:
        values = [str(int(r.low) - 1), str(int(r.high) + 1), "1e20", "1.5"]
    else:
        step = (r.high - r.low) / 2
        values = [repr(r.low - step if not r.low_open else r.low), repr(r.high + step if not r.high_open else r.high),
                  "nan", "inf"]
    return values


def _assert_refused(result, place, *needles, created=()):
    text = result.output
    assert result.exit_code in (1, 2), text
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in text, text
    assert not Path(place["out"]).exists() and not Path(place["file"]).exists()
    for path in created:
        assert not Path(path).exists(), path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_numeric_option_of_every_command_has_a_range():
    numeric = (click.types.IntParamType, click.types.FloatParamType)
    loose = [(name, p.opts) for name, command in main.commands.items() for p in command.params
             if isinstance(p.type, numeric) and not isinstance(p.type, (BoundedInt, BoundedFloat))]
    assert not loose
    assert {name for name, _, _ in _bounded_options()} >= set(BASE) - {"report", "verify"}


CASES = [(name, flag, r, value) for name, flag, r in _bounded_options() for value in _outside(r)]


@pytest.mark.parametrize("command, flag, r, value", CASES,
                         ids=[f"{c}{f}={v}" for c, f, _, v in CASES])
def test_a_value_outside_the_range_is_refused_before_any_work(place, records, command, flag, r, value):
    before = sorted(p.name for p in records.iterdir())
    result = invoke(command, *_args(BASE[command], place), flag, value)
    name = flag[2:].replace("-", "_")
    _assert_refused(result, place, f"Received: {name}={value}; expected {r}")
    assert sorted(p.name for p in records.iterdir()) == before  # e.g. no baseline.json


@pytest.mark.parametrize("command, flag, r", list(_bounded_options()),
                         ids=[f"{c}{f}" for c, f, _ in _bounded_options()])
def test_the_bounds_themselves_are_accepted(place, command, flag, r):
    cmd = main.commands[command]
    param = next(p for p in cmd.params if flag in p.opts)
    for bound, open_ in ((r.low, r.low_open), (r.high, r.high_open)):
        if not open_:
            text = str(int(bound)) if r.integer else repr(float(bound))
            ctx = cmd.make_context(command, _args(BASE[command], place) + [flag, text])  # parses; runs nothing
            assert ctx.params[param.name] == bound


SPECIAL = [
    # the records have 64 Mel bands: a shift must stay below 32
    (["refine", "{records}", "-o", "{out}", "--freq-shift", "32"],
     "Received: freq_shift=32; expected an integer in [0, 31]"),
    (["refine", "{records}", "-o", "{out}", "--min-epochs", "50", "--epochs", "1"],
     "Received: min_epochs=50 with epochs=1; expected min_epochs < epochs"),
    (["refine", "{records}", "-o", "{out}", "--rounds", "1000000000000"],
     "Received: rounds=1000000000000; expected an integer in [1, 100]"),
    (["refine", "{records}", "-o", "{out}", "--seed", "-5"],
     "Received: seed=-5; expected an integer in [0, 4294967295]"),
    (["refine", "{records}", "-o", "{out}", "--alpha", "nan"], "Received: alpha=nan"),
    (["refine", "{records}", "-o", "{out}", "--config", "{tmp}/big.yaml"],
     "Received: rounds=1000000000000; expected an integer in [1, 100]"),
    (["lcw", "{records}", "-o", "{out}", "--warmup", "5", "--epochs", "3"],
     "Received: warmup=5 with epochs=3 and update='both'; expected warmup < epochs"),
    (["build-records", "{corpus}", "--manifest", "{manifest}", "-o", "{out}", "--seed", "-3"], "Received: seed=-3"),
    (["synth-corpus", "{out}", "--per-class", "1e20"], "Received: per_class=1e20; expected an integer in [2, 1000]"),
    (["synth-corpus", "{out}", "--seed", "-3"], "Received: seed=-3"),
    (["predict", "{run}", "{tmp}/nosuch.wav"], "Received: audio="),
    (["predict", "{run}", "{tmp}/nosuch.wav", "{tmp}/other.wav"], "(no such file)"),
    (["predict", "{run}", "{wav}", "-o", "{tmp}/nodir/out.json"], "Received: output="),
    (["inspect", "{records}", "--utterance", "x", "--dump", "{tmp}/nodir/x.npy"], "Received: dump="),
    (["export", "{run}", "-o", "{wav}/sub"], "Received: output="),
]


@pytest.mark.parametrize("args, message", SPECIAL, ids=[" ".join(a[:1] + a[3:]) for a, _ in SPECIAL])
def test_values_checked_against_each_other_the_records_or_the_file_system(place, args, message):
    (place["tmp"] / "big.yaml").write_text("rounds: 1000000000000\n")
    result = invoke(*[a.format(**{k: str(v) for k, v in place.items()}) for a in args])
    _assert_refused(result, place, message,
                    created=[place["tmp"] / "nodir", place["tmp"] / "nodir" / "out.json"])
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


def test_predict_names_a_missing_file_without_loading_the_run(place):
    result = invoke("predict", place["run"], "nosuch.wav")
    assert result.exit_code == 2
    assert result.output == "Error: Received: audio='nosuch.wav' (no such file); expected audio files to predict\n"


def test_an_unreadable_audio_file_says_why():
    from emotion_refinery.data.audio import load, unreadable
    from emotion_refinery.errors import AudioError

    assert unreadable("nosuch.wav") == "no such file"
    assert unreadable(os.getcwd()) == "a folder, not an audio file"
    with pytest.raises(AudioError, match="^no such file$"):
        load("nosuch.wav")


# --------------------------------------------------------------------------- the ranges themselves


@pytest.mark.parametrize("r, inside, outside", [
    (Range(1, 100), [1, 100, 50], [0, 101, 1.0, True, "5", None, 10**12]),
    (Range(0, 1, integer=False, high_open=True), [0, 0.5, 0.999], [1, -0.1, math.nan, math.inf, True]),
    (Range(0, 1, integer=False, low_open=True), [1, 1e-9], [0, math.nan]),
    (SEED, [0, 2**32 - 1], [-1, 2**32]),
])
def test_range_membership(r, inside, outside):
    assert all(v in r for v in inside) and not any(v in r for v in outside)


def test_range_messages_use_the_house_form():
    assert str(Range(1, 100)) == "an integer in [1, 100]"
    assert str(Range(0, 1, integer=False, low_open=True)) == "a number in (0, 1]"
    with pytest.raises(EmorefineError, match=re.escape("Received: rounds=1000000000000; expected an integer in "
                                                       "[1, 100]")):
        Range(1, 100).check("rounds", 1000000000000)


def test_library_entry_points_check_their_ranges_too(tmp_path, synthetic_corpus):
    from emotion_refinery.data.synthetic import make_corpus
    from emotion_refinery.methods.lcw import LCWConfig
    from emotion_refinery.methods.mlee import MLEEConfig
    from emotion_refinery.records.build import build_records
    from emotion_refinery.refine.settings import RefineConfig

    for make in (lambda: RefineConfig(seed=-5), lambda: LCWConfig(seed=-5), lambda: MLEEConfig(seed=-5),
                 lambda: make_corpus(tmp_path / "c", seed=-5),
                 lambda: build_records(synthetic_corpus[0], tmp_path / "r", manifest=synthetic_corpus[1], seed=-5)):
        with pytest.raises(EmorefineError, match="Received: seed=-5; expected an integer in"):
            make()
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()
    with pytest.raises(EmorefineError, match=re.escape("Received: rounds=1000000000000")):
        RefineConfig(rounds=10**12)


# --------------------------------------------------------------------------- quiet by default


def test_tensorflow_log_lines_stay_off_stderr(records):
    """A command that imports TensorFlow (verify reads the shards with it) writes no C++ log line."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EMOREFINE_VERBOSE")}
    result = subprocess.run([sys.executable, "-m", "cli", "verify", str(records), "-q"], capture_output=True,
                            text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout
    glog = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d", re.M)
    assert not glog.search(result.stderr) and "absl::InitializeLog" not in result.stderr, result.stderr


@pytest.mark.parametrize("command, module, report, line", [
    ("lcw", "methods.lcw", {"wa": 0.5, "ua": 0.25, "macro_f1": 0.2, "changed": [1, 2]},
     "LC+W (both): WA 50.00 %, UA 25.00 %, macro-F1 20.00 %; 2 learned labels differ from the given ones"),
    ("mlee", "methods.mlee", {"wa": 0.5, "ua": 0.25, "macro_f1": 0.2, "existence": {"macro_f1": 0.75}},
     "MLEE (fusion): WA 50.00 %, UA 25.00 %, macro-F1 20.00 %; existence macro-F1 75.00 %"),
])
def test_quiet_keeps_the_summary_line(monkeypatch, place, command, module, report, line):
    import importlib

    mod = importlib.import_module(f"emotion_refinery.{module}")
    monkeypatch.setattr(mod, f"run_{command}", lambda records, out, config, log, **kw: report)  # no training
    result = invoke(command, place["records"], "-o", place["out"], "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output == f"{line}\nReport: {place['out']}/report.md\n"


def test_verbose_undoes_quiet_before_tensorflow_is_imported(monkeypatch):
    from emotion_refinery.util import quiet

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, quiet._QuietImport)])
    monkeypatch.setattr(quiet, "_SET_LEVEL", False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as before the first import (not re-imported)
    quiet.configure(False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and isinstance(sys.meta_path[0], quiet._QuietImport)
    quiet.configure(True)  # emorefine COMMAND --verbose, after the group's default
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ[quiet.VERBOSE_ENV] == "1"
    assert not any(isinstance(f, quiet._QuietImport) for f in sys.meta_path)


def test_every_command_takes_verbose():
    assert all(any(p.name == "verbose" for p in command.params) for command in main.commands.values())
