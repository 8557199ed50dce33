"""The command line, through click's CliRunner and as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import tone, write_wav

FAST = ["--segment-hop", "4", "--folds", "3", "--workers", "1", "-q"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


#: Every command of `emorefine`; a command added or dropped must be added here or dropped too.
COMMANDS = {"baseline", "build-records", "export", "inspect", "lcw", "mlee", "predict", "refine", "report",
            "synth-corpus", "verify"}


def test_help_lists_commands():
    assert set(main.commands) == COMMANDS
    result = run("--help")
    assert result.exit_code == 0
    # The "Commands:" section: one "  name  short help" line per command, each with its own short help.
    section = result.output.split("Commands:\n", 1)[1]
    listed = dict(line.split(None, 1) for line in section.splitlines() if line.startswith("  "))
    assert set(listed) == COMMANDS
    for name, command in main.commands.items():
        assert command.get_short_help_str(limit=200).startswith(listed[name].removesuffix("...")), name


def test_build_inspect_verify(emodb_dir, tmp_path):
    out = tmp_path / "rec"
    result = run("build-records", emodb_dir, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert "Built" in result.output and "emodb" in result.output and "skipped     none" in result.output

    summary = json.loads(run("inspect", out, "--json").output)
    for key in ("utterances", "segments", "classes", "class_counts", "speakers", "folds", "shards", "skipped",
                "features"):
        assert key in summary
    assert summary["utterances"] == 12 and summary["speakers"] == 3 and summary["features"]["segment_hop"] == 4
    assert sum(f["segments"] for f in summary["folds"]) == summary["segments"]
    # The leakage audit: each text code (a01 .. a04, one per emotion here) is in every fold, so every
    # held-out utterance's text is also in its training fold.
    audit = summary["audit"]
    assert [r["fold"] for r in audit["folds"]] == [0, 1, 2] and audit["summary"]["text_share"] == 1.0
    assert "text-dependent: 100 % have their text in the training folds" in audit["warning"]
    text = run("inspect", out).output
    assert f"leakage     {audit['warning']}" in text and "held-out fold  utterances  speakers" in text

    dump = tmp_path / "u.npy"
    result = run("inspect", out, "--utterance", "03a01Wa", "--dump", dump)
    assert result.exit_code == 0, result.output
    segments = np.load(dump)
    assert segments.dtype == np.float32 and segments.shape[1:] == (32, 64)
    assert segments.shape[0] == next(u for u in json.loads((out / "manifest.json").read_text())["utterances"]
                                     if u["id"] == "03a01Wa")["segments"]

    assert run("verify", out, "-q").exit_code == 0
    again = run("build-records", emodb_dir, "-o", out, *FAST)
    assert again.exit_code == 0 and "Already complete" in again.output


def test_verify_names_the_bad_shard(emodb_dir, tmp_path):
    out = tmp_path / "rec"
    run("build-records", emodb_dir, "-o", out, *FAST)
    shard = sorted((out / "shards").iterdir())[0]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["verify", str(out), "-q"])
    assert result.exit_code == 1
    assert f"BAD shards/{shard.name}" in result.output


def test_unknown_corpus_missing_folder_and_folder_without_audio(tmp_path):
    result = CliRunner().invoke(main, ["build-records", str(tmp_path), "-o", str(tmp_path / "r"), "--corpus", "xyz"])
    assert result.exit_code == 2 and "'xyz' is not one of" in result.output
    result = CliRunner().invoke(main, ["build-records", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "nope" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["build-records", str(tmp_path / "empty"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "empty" in result.output
    assert not (tmp_path / "r").exists()


def test_strict_fails_when_something_was_skipped(emodb_dir, tmp_path):
    write_wav(emodb_dir / "03a02Wa.wav", tone(300, 0.1))
    result = CliRunner().invoke(main, ["build-records", str(emodb_dir), "-o", str(tmp_path / "r"), *FAST, "--strict"])
    assert result.exit_code == 1
    assert "03a02Wa.wav: too short" in result.output and "--strict" in result.output


def test_nothing_usable_exits_1_naming_the_reason(tmp_path):
    write_wav(tmp_path / "c" / "03a01Wa.wav", tone(300, 0.1))
    result = CliRunner().invoke(main, ["build-records", str(tmp_path / "c"), "-o", str(tmp_path / "r"), *FAST])
    assert result.exit_code == 1
    assert "No usable utterance" in result.output and "too short" in result.output
    assert not (tmp_path / "r").exists()


def test_other_settings_refused_by_name(emodb_dir, tmp_path):
    run("build-records", emodb_dir, "-o", tmp_path / "r", *FAST)
    result = CliRunner().invoke(main, ["build-records", str(emodb_dir), "-o", str(tmp_path / "r"), *FAST[:-1],
                                       "--dtype", "float32"])
    assert result.exit_code == 2 and "dtype: 'float16' → 'float32'" in result.output


def test_manifest_with_wrong_corpus_is_a_usage_error(synthetic_corpus, tmp_path):
    root, manifest = synthetic_corpus
    result = CliRunner().invoke(main, ["build-records", str(root), "-o", str(tmp_path / "r"), "--corpus", "emodb",
                                       "--manifest", str(manifest)])
    assert result.exit_code == 2 and "--manifest is for CSV corpora" in result.output


def test_synth_corpus_then_build(tmp_path):
    result = run("synth-corpus", tmp_path / "s", "--per-class", "2")
    assert result.exit_code == 0 and "8 utterances" in result.output
    result = run("build-records", tmp_path / "s", "--manifest", tmp_path / "s" / "manifest.csv", "-o",
                 tmp_path / "r", "--preset", "fast", "--folds", "2", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert "preset fast" in result.output and "anger 2, happiness 2, neutral 2, sadness 2" in result.output


def _cli(*args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "cli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_python_m_cli_and_kill_9_then_resume(emodb_dir, tmp_path):
    """A real SIGKILL while shards are written; the same command finishes the build, byte-identical."""
    args = ["build-records", emodb_dir, *FAST]
    clean = _cli(*args, "-o", tmp_path / "clean")
    assert clean.wait(timeout=120) == 0, clean.stderr.read()
    # Slow the writer down enough to be killed mid-build: many tiny shards.
    victim = _cli(*args, "-o", tmp_path / "rec")
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "rec").glob(".partial/frames/*.npy")):
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "rec" / "manifest.json").exists()
    finish = _cli(*args, "-o", tmp_path / "rec")
    out, err = finish.communicate(timeout=120)
    assert finish.returncode == 0, err
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert files(tmp_path / "rec") == files(tmp_path / "clean")
