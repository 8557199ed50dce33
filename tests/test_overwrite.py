"""No trapped folder: a command checks what it can before it writes its folder's settings; once a run or build
has started and fails, the error says how to continue or start over; ``--overwrite`` starts over in a folder that
emorefine made, and refuses (touching nothing) any other folder. And methods say what they train on before they
train (``mlee`` without votes, ``--train-on all`` without unlabelled utterances).

No test here trains: a failure after the settings are written (a NaN loss) is simulated by replacing the first
step that follows them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.errors import EmorefineError, TrainingError
from emotion_refinery.util.overwrite import check_overwrite, clear_folder, foreign_reason
from emotion_refinery.util.processes import LOCK_NAME, directory_lock

NAN = "fold 1: the loss became NaN or infinite in epoch 1; nothing of it was kept. Lower --lr."
QUICK = ["--preset", "fast", "--backbone", "small", "--rounds", "1", "--epochs", "1", "-q"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _errors(result) -> list[str]:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return [line for line in result.output.splitlines() if line.startswith("Error")]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    """Records of the 16-file synthetic corpus (no votes): 3 folds, segment hop 16, log-Mel sequences."""
    from emotion_refinery.records.build import build_records

    root, csv = synthetic_corpus
    out = tmp_path_factory.mktemp("overwrite") / "records"
    build_records(root, out, manifest=csv, features=FeatureConfig(segment_hop=16), n_folds=3, workers=1,
                  sequences="log-mel")
    return out


@pytest.fixture
def nan_after_settings(monkeypatch):
    """refine, lcw and mlee fail like a NaN loss right after their run's config.json is written."""
    from emotion_refinery.methods import lcw as lcw_run
    from emotion_refinery.methods import mlee as mlee_run
    from emotion_refinery.refine import rounds as refinery

    def fail(*args, **kwargs):
        raise TrainingError(NAN)

    monkeypatch.setattr(refinery, "choose_speaker_norm", fail)
    monkeypatch.setattr(lcw_run, "_train_fold", fail)
    monkeypatch.setattr(mlee_run, "_train_fold", fail)


@pytest.fixture
def foreign(tmp_path):
    """A folder of someone else's: one unrelated file."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


# --------------------------------------------------------------------------- refine


def test_a_failed_run_says_how_to_go_on_and_overwrite_starts_it_over_with_new_settings(records, tmp_path,
                                                                                     nan_after_settings):
    out = tmp_path / "run"
    result = invoke("refine", records, "-o", out, *QUICK)
    assert result.exit_code == 1 and len(_errors(result)) == 1, result.output
    assert NAN in result.output and "run the same command again to continue" in result.output
    assert "--overwrite" in result.output and "another -o" in result.output
    assert json.loads((out / "config.json").read_text())["config"]["lr"] != 0.0001
    (out / "report.md").write_text("left from the failed run")

    result = invoke("refine", records, "-o", out, *QUICK, "--lr", "0.0001")  # the advice, on the same folder
    assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
    assert "other settings" in result.output and "config.lr" in result.output and "--overwrite" in result.output

    result = invoke("refine", records, "-o", out, *QUICK, "--lr", "0.0001", "--overwrite")
    assert result.exit_code == 1 and NAN in result.output, result.output  # it ran (and failed again, as patched)
    assert json.loads((out / "config.json").read_text())["config"]["lr"] == 0.0001  # the new settings
    assert not (out / "report.md").exists() and not (out / LOCK_NAME).exists()


def test_overwrite_refuses_a_folder_emorefine_did_not_make_and_touches_nothing(records, foreign):
    before = _listing(foreign)
    result = invoke("refine", records, "-o", foreign, *QUICK, "--overwrite")
    assert result.exit_code == 2 and _errors(result) == [
        f"Error: Received: --overwrite with output={str(foreign)!r}; it is not an emorefine run directory (no "
        "config.json); expected an emorefine run directory (with its config.json), an empty folder or a new path: "
        "--overwrite deletes only folders emorefine made"]
    assert _listing(foreign) == before and (foreign / "notes.txt").read_text() == "my notes"
    (foreign / "config.json").write_text('{"learning_rate": 0.1}')  # someone else's config.json
    result = invoke("refine", records, "-o", foreign, *QUICK, "--overwrite")
    assert result.exit_code == 2 and "was not written by emorefine" in result.output
    assert (foreign / "config.json").read_text() == '{"learning_rate": 0.1}' and (foreign / "notes.txt").is_file()


@pytest.mark.parametrize("command, extra", [("lcw", ["--epochs", "2"]), ("mlee", ["--variant", "hard"])])
def test_lcw_and_mlee_overwrite_and_refusals(records, foreign, tmp_path, nan_after_settings, command, extra):
    before = _listing(foreign)
    result = invoke(command, records, "-o", foreign, *extra, "--overwrite", "-q")
    assert result.exit_code == 2 and "Received: --overwrite with output=" in result.output, result.output
    assert "it is not an emorefine run directory (no config.json)" in result.output and _listing(foreign) == before

    out = tmp_path / "run"
    result = invoke(command, records, "-o", out, *extra, "-q")
    assert result.exit_code == 1 and len(_errors(result)) == 1, result.output
    assert "run the same command again to continue" in result.output and "--overwrite" in result.output
    result = invoke(command, records, "-o", out, *extra, "--seed", "1", "-q")
    assert result.exit_code == 2 and "other settings" in result.output and "--overwrite" in result.output
    result = invoke(command, records, "-o", out, *extra, "--seed", "1", "--overwrite", "-q")
    assert result.exit_code == 1 and NAN in result.output, result.output
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 1


def test_overwrite_of_a_run_of_another_method_starts_over(records, tmp_path, nan_after_settings):
    out = tmp_path / "run"
    invoke("lcw", records, "-o", out, "-q")
    result = invoke("mlee", records, "-o", out, "--variant", "hard", "-q")
    assert result.exit_code == 2 and "holds a lcw run" in result.output and "--overwrite" in result.output
    result = invoke("mlee", records, "-o", out, "--variant", "hard", "--overwrite", "-q")
    assert result.exit_code == 1 and json.loads((out / "config.json").read_text())["method"] == "mlee"


def test_a_damaged_run_directory_is_refused_with_the_way_out_and_overwrite_brings_it_back(records, tmp_path,
                                                                                         nan_after_settings):
    out = tmp_path / "run"
    invoke("refine", records, "-o", out, *QUICK)
    for damaged in ('{"config": {"rounds": 1', "[1, 2]"):  # truncated; valid JSON but not a run's settings
        (out / "rounds" / "round-00").mkdir(parents=True, exist_ok=True)  # as a run that got further
        (out / "config.json").write_text(damaged)
        result = invoke("refine", records, "-o", out, *QUICK)
        assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
        assert "config.json" in result.output and "--overwrite" in result.output
        result = invoke("refine", records, "-o", out, *QUICK, "--overwrite")
        assert result.exit_code == 1 and NAN in result.output, result.output
        assert json.loads((out / "config.json").read_text())["emorefine_version"]
    (out / "config.json").write_text("[1, 2]")  # alone: perhaps not emorefine's, so --overwrite is not offered
    result = invoke("refine", records, "-o", out, *QUICK)
    assert result.exit_code == 2 and "choose another -o" in result.output and "--overwrite" not in result.output


def test_overwrite_waits_for_no_one_a_running_command_keeps_its_folder(records, tmp_path, nan_after_settings):
    out = tmp_path / "run"
    invoke("refine", records, "-o", out, *QUICK)
    before = _listing(out)
    with directory_lock(out):  # another refine holds it
        result = invoke("refine", records, "-o", out, *QUICK, "--overwrite")
        assert result.exit_code == 2 and "another emorefine refine" in result.output
        assert _listing(out) == sorted(before + [LOCK_NAME])


def test_overwrite_never_deletes_the_records_it_reads(records, tmp_path):
    with pytest.raises(EmorefineError, match="which holds the input records="):
        check_overwrite(records.parent, "run", inputs={"records": records})
    with pytest.raises(EmorefineError, match="which holds the input records="):
        check_overwrite(records, "records", inputs={"records": records})


# --------------------------------------------------------------------------- build-records


def test_folds_the_corpus_cannot_fill_are_refused_before_anything_is_written(synthetic_corpus, tmp_path):
    root, csv = synthetic_corpus
    out = tmp_path / "records"
    result = invoke("build-records", root, "--manifest", csv, "-o", out, "--folds", "7", "--workers", "1", "-q")
    assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
    assert "Received: folds=7" in result.output and not out.exists()
    result = invoke("build-records", root, "--manifest", csv, "-o", out, "--folds", "5", "--folds-by", "speaker",
                    "--workers", "1", "-q")  # 4 speakers
    assert result.exit_code == 2 and "number of speakers (4)" in result.output and not out.exists()


def test_a_failed_build_says_how_to_go_on_and_overwrite_rebuilds(synthetic_corpus, tmp_path, monkeypatch):
    from emotion_refinery.records import build as records_module

    root, csv = synthetic_corpus
    out = tmp_path / "records"
    args = ["build-records", root, "--manifest", csv, "-o", out, "--segment-hop", "16", "--folds", "3", "--workers",
            "1", "-q"]
    with monkeypatch.context() as m:
        def fail(*a, **k):
            raise EmorefineError("Received: folds=3; expected at most the number of usable utterances")

        m.setattr(records_module, "_build", fail)
        result = invoke(*args)
    assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
    assert "run the same command again to continue" in result.output and "--overwrite" in result.output
    assert (out / ".partial" / "settings.json").is_file()

    hop = args.index("--segment-hop") + 1
    other = [*args[:hop], "8", *args[hop + 1:-5], "--folds", "2", "--workers", "1", "-q"]
    result = invoke(*other)  # other segments: the cached frames would not serve
    assert result.exit_code == 2 and "interrupted build with other settings" in result.output
    assert "--overwrite" in result.output
    result = invoke(*other, "--overwrite")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["folds"]["n_folds"] == 2 and manifest["settings"]["features"]["segment_hop"] == 8

    result = invoke(*args)  # finished records of other settings
    assert result.exit_code == 2 and "records built with other settings" in result.output
    assert "--overwrite" in result.output
    (out / "manifest.json").write_text('{"schema_vers')  # truncated
    result = invoke(*args)
    assert result.exit_code == 2 and len(_errors(result)) == 1 and "--overwrite" in result.output, result.output
    result = invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["folds"]["n_folds"] == 3


def test_folds_the_usable_utterances_cannot_fill_leave_a_build_that_other_folds_finish(emodb_dir, tmp_path):
    """The corpus has 3 speakers, but all of speaker 11's files are too short: 3 speaker folds fail only after
    the audio is decoded. The same folder then takes other folds (its decoded frames still serve)."""
    from tests.conftest import tone, write_wav

    for path in emodb_dir.glob("11*.wav"):
        write_wav(path, tone(300, 0.1))
    out = tmp_path / "records"
    args = ["build-records", emodb_dir, "-o", out, "--segment-hop", "8", "--folds-by", "speaker", "--workers", "1",
            "-q"]
    result = invoke(*args, "--folds", "3")
    assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
    assert "number of speakers (2)" in result.output and "--overwrite" in result.output
    result = invoke(*args, "--folds", "2")
    assert result.exit_code == 0, result.output
    assert "Finished" in result.output and json.loads((out / "manifest.json").read_text())["folds"]["n_folds"] == 2


def test_build_records_overwrite_refuses_foreign_folders_and_its_own_corpus(synthetic_corpus, foreign):
    root, csv = synthetic_corpus
    before = _listing(foreign)
    result = invoke("build-records", root, "--manifest", csv, "-o", foreign, "--folds", "3", "--overwrite", "-q")
    assert result.exit_code == 2 and _listing(foreign) == before
    assert "it is not an emorefine records folder (no manifest.json)" in result.output
    before = _listing(root)
    result = invoke("build-records", root, "--manifest", csv, "-o", root, "--folds", "3", "--overwrite", "-q")
    assert result.exit_code == 2 and "which holds the input corpus_dir=" in result.output
    assert _listing(root) == before


def test_sequences_that_need_opensmile_are_refused_before_anything_is_written(synthetic_corpus, tmp_path,
                                                                               monkeypatch):
    import importlib.util

    from emotion_refinery.errors import RecordsError
    from emotion_refinery.records.build import build_records

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "opensmile" else real(name, *a))
    root, csv = synthetic_corpus
    for kind in ("lld", "egemaps"):
        with pytest.raises(RecordsError, match=f"Received: sequences='{kind}'; it needs the opensmile package"):
            build_records(root, tmp_path / "r", manifest=csv, sequences=kind, workers=1)
        assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- synth-corpus


def test_synth_corpus_overwrite(tmp_path, foreign):
    out = tmp_path / "corpus"
    assert invoke("synth-corpus", out, "--per-class", "2").exit_code == 0
    result = invoke("synth-corpus", out, "--per-class", "3")
    assert result.exit_code == 2 and "add --overwrite to replace it" in result.output
    result = invoke("synth-corpus", out, "--per-class", "3", "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(list((out / "wav").iterdir())) == 12
    before = _listing(foreign)
    result = invoke("synth-corpus", foreign, "--overwrite")
    assert result.exit_code == 2 and "it is not a synth-corpus folder" in result.output
    assert _listing(foreign) == before
    result = invoke("synth-corpus", foreign)
    assert result.exit_code == 2 and "expected a new or empty folder" in result.output
    assert "--overwrite" not in result.output  # it would be refused


# --------------------------------------------------------------------------- whose folder


def test_whose_folder(tmp_path):
    run = tmp_path / "run"
    assert foreign_reason(run, "run") is None  # new
    run.mkdir()
    (run / LOCK_NAME).write_text("")
    assert foreign_reason(run, "run") is None  # empty but for a lock
    (run / "config.json").write_text(json.dumps({"config": {}, "records": {}, "emorefine_version": "0.1.0"}))
    (run / "notes.txt").write_text("kept with the run")
    assert foreign_reason(run, "run") is None  # a run directory, whatever else the user put there
    (run / "config.json").write_text("{")
    assert "cannot be read" in foreign_reason(run, "run")  # damaged, beside a file emorefine does not write
    (run / "notes.txt").unlink()
    assert foreign_reason(run, "run") is None  # damaged, nothing but a run's files
    (tmp_path / "file").write_text("")
    assert foreign_reason(tmp_path / "file", "run") == "it is a file"

    records = tmp_path / "records"
    (records / ".partial").mkdir(parents=True)
    (records / ".partial" / "settings.json").write_text(json.dumps({"schema_version": 1}))
    assert foreign_reason(records, "records") is None  # an interrupted build
    (records / "manifest.json").write_text("[1, 2]")
    assert foreign_reason(records, "records") is None  # foreign content, beside what only a build writes
    (records / ".partial" / "settings.json").unlink()
    (records / ".partial").rmdir()
    assert foreign_reason(records, "records") == "its manifest.json was not written by emorefine"

    corpus = tmp_path / "corpus"
    (corpus / "wav").mkdir(parents=True)
    (corpus / "wav" / "s1_anger_00.wav").write_bytes(b"")
    assert foreign_reason(corpus, "corpus") is None  # an interrupted synth-corpus
    (corpus / "wav" / "interview.wav").write_bytes(b"")
    assert "interview.wav" in foreign_reason(corpus, "corpus")


def test_clear_folder_keeps_the_lock_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    (run / "rounds" / "round-00").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"emorefine_version": "0.1.0"}))
    with directory_lock(run):
        assert clear_folder(run, "run")
        assert [p.name for p in run.iterdir()] == [LOCK_NAME]
    assert not clear_folder(tmp_path / "new", "run") and not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- what a method trains on


@pytest.mark.parametrize("variant", ["soft", "mlee", "pretrain", "fusion"])
def test_mlee_without_votes_is_refused_before_anything_is_written(records, tmp_path, variant):
    out = tmp_path / "run"
    result = invoke("mlee", records, "-o", out, "--variant", variant)
    assert result.exit_code == 2 and len(_errors(result)) == 1, result.output
    assert f"Received: variant={variant!r} with records" in result.output
    assert "carry no annotator votes" in result.output and "--variant hard" in result.output
    assert not out.exists()


def test_mlee_train_on_all_without_unlabelled_utterances_is_refused_before_anything_is_written(records, tmp_path):
    out = tmp_path / "run"
    result = invoke("mlee", records, "-o", out, "--variant", "mlee", "--train-on", "all")
    assert result.exit_code == 2 and "Received: train_on='all' with records" in result.output
    assert not out.exists()


def test_mlee_hard_without_votes_says_what_it_trains_on_before_training(records, tmp_path, nan_after_settings):
    result = invoke("mlee", records, "-o", tmp_path / "run", "--variant", "hard")
    assert result.exit_code == 1
    note = result.output.index("note: no utterance of these records carries votes: variant hard trains on the "
                               "labels alone")
    assert note < result.output.index(NAN)  # before the first training


def test_refine_label_source_votes_without_votes_is_refused_before_anything_is_written(records, tmp_path):
    out = tmp_path / "run"
    result = invoke("refine", records, "-o", out, *QUICK, "--label-source", "votes")
    assert result.exit_code == 2 and "label_source='votes' with records whose utterances carry no votes" in \
        result.output
    assert not out.exists()
