"""``emorefine refine`` and ``emorefine inspect RUN_DIR`` through click's CliRunner.

One short run (made once for the module) serves the tests of the output, the re-run, the
refused change and ``inspect``; the refusals before training need no run at all.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from emotion_refinery.records.manifest import RecordsManifest
from emotion_refinery.records.run_dir import RunDir

N_FOLDS = 3
CONFIG_YAML = """\
backbone: small
rounds: 2
epochs: 5          # overridden by --epochs 1 on the command line
batch-size: 64
bn_momentum: 0.9
rule: wdsl
alpha: 0.2
seed: 4
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _build(corpus, out, *extra):
    root, manifest = corpus
    result = invoke("build-records", root, "--manifest", manifest, "-o", out, "--segment-hop", "16",
                    "--workers", "1", "-q", *extra)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def records(synthetic_corpus, tmp_path_factory):
    return _build(synthetic_corpus, tmp_path_factory.mktemp("cli-records") / "rec", "--folds", str(N_FOLDS))


@pytest.fixture(scope="module")
def cli_run(records, tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-run")
    (base / "refine.yaml").write_text(CONFIG_YAML)
    out = base / "run"
    args = ["refine", records, "-o", out, "--config", base / "refine.yaml", "--epochs", "1", "-q"]
    result = invoke(*args)
    return out, args, result


def _fold_lines(output):
    return re.findall(r"^round \d+ fold \d+/\d+:", output, flags=re.MULTILINE)


def test_refine_trains_every_fold_and_prints_the_table(cli_run):
    out, _, result = cli_run
    assert result.exit_code == 0, result.output
    assert _fold_lines(result.output) == [f"round {t} fold {k}/{N_FOLDS}:" for t in (0, 1)
                                          for k in range(1, N_FOLDS + 1)]
    assert re.search(r"^round 0 \(hard\): WA [\d.]+ %, UA [\d.]+ %", result.output, flags=re.MULTILINE)
    assert re.search(r"^round 1 \(wdsl, alpha 0\.2\): WA", result.output, flags=re.MULTILINE)
    assert f"Report: {out}/report.md" in result.output
    assert "| round | rule | α | WA (%) | UA (%) |" in result.output
    assert re.search(r"^\| 0 \| hard \|  \| [\d.]+ \| [\d.]+ \|", result.output, flags=re.MULTILINE)
    assert re.search(r"^\| 1 \| wdsl \| 0\.2 \| [\d.]+ \| [\d.]+ \|", result.output, flags=re.MULTILINE)
    assert "Confusion" not in result.output  # the terminal gets the table only; report.md has the rest
    assert "Confusion matrix" in (out / "report.md").read_text()


def test_config_file_keys_mirror_flags_and_flags_override(cli_run):
    out, _, result = cli_run
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["epochs"] == 1  # the flag beat the file's 5
    assert (saved["backbone"], saved["rounds"], saved["batch_size"], saved["bn_momentum"], saved["seed"]) == (
        "small", 2, 64, 0.9, 4)
    assert all(json.loads(p.read_text())["epochs"] == 1 for p in out.glob("rounds/*/done/*.json"))


def test_same_command_again_only_prints_the_report(cli_run):
    out, args, first = cli_run
    assert first.exit_code == 0, first.output
    before = {p: p.stat().st_mtime_ns for p in out.glob("rounds/*/done/*.json")}
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert _fold_lines(result.output) == []
    assert {p: p.stat().st_mtime_ns for p in out.glob("rounds/*/done/*.json")} == before
    def table(text):
        return [line for line in text.splitlines() if line.startswith("| ")]

    assert table(result.output) == table(first.output) and len(table(result.output)) == 3


def test_changed_settings_exit_2_naming_the_setting(cli_run):
    out, args, first = cli_run
    assert first.exit_code == 0, first.output
    result = invoke(*args[:-3], "--epochs", "2", "-q")
    assert result.exit_code == 2
    assert "config.epochs: 1 → 2" in result.output and "other settings" in result.output
    result = invoke(*args, "--rule", "dhl")
    assert result.exit_code == 2 and "config.rule: 'wdsl' → 'dhl'" in result.output
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 1


def test_inspect_run_dumps_one_utterance(cli_run, records, tmp_path):
    out, _, first = cli_run
    assert first.exit_code == 0, first.output
    manifest = RecordsManifest.load(records)
    run = RunDir(out)
    u = manifest.utterances[-1]
    rows = slice(u["first_segment"], u["first_segment"] + u["segments"])
    for t in (0, 1):
        dump = tmp_path / f"u{t}.npz"
        result = invoke("inspect", out, "--round", t, "--utterance", u["id"], "--dump", dump)
        assert result.exit_code == 0, result.output
        assert f"Wrote {dump}" in result.output and f"round {t}, label {u['label_index']}" in result.output
        with np.load(dump) as arrays:
            assert sorted(arrays.files) == ["label", "predictions", "targets"]
            k = len(manifest.classes)
            assert arrays["targets"].shape == arrays["predictions"].shape == (u["segments"], k)
            np.testing.assert_array_equal(arrays["targets"], run.load_targets(t, manifest)[rows])
            np.testing.assert_array_equal(arrays["predictions"], run.load_predictions(t, manifest)[rows])
            assert int(arrays["label"]) == u["label_index"]
            np.testing.assert_allclose(arrays["predictions"].sum(1), 1.0, atol=1e-5)
            if t == 0:
                np.testing.assert_array_equal(arrays["targets"], np.eye(k)[np.full(u["segments"], u["label_index"])])


def test_inspect_run_report_and_its_errors(cli_run, records, tmp_path):
    out, _, first = cli_run
    assert first.exit_code == 0, first.output
    text = invoke("inspect", out)
    assert text.exit_code == 0 and "| 1 | wdsl | 0.2 |" in text.output
    report = json.loads(invoke("inspect", out, "--json").output)
    assert report == json.loads((out / "report.json").read_text()) and len(report["rounds"]) == 2
    uid = RecordsManifest.load(records).utterances[0]["id"]
    result = invoke("inspect", out, "--round", 5, "--utterance", uid, "--dump", tmp_path / "x.npz")
    assert result.exit_code == 2 and "Received: round=5; this run has rounds [0, 1]" in result.output
    result = invoke("inspect", out, "--round", 0, "--utterance", "nope", "--dump", tmp_path / "x.npz")
    assert result.exit_code == 2 and "Received: utterance='nope'" in result.output
    result = invoke("inspect", out, "--utterance", uid, "--dump", tmp_path / "x.npz")
    assert result.exit_code == 2 and "--round" in result.output
    assert not (tmp_path / "x.npz").exists()


# --------------------------------------------------------------------------- refusals before training


def _refused(result, out, *messages):
    assert result.exit_code == 2, result.output
    for message in messages:
        assert message in result.output, result.output
    assert not out.exists() or not (out / "rounds").exists()


@pytest.mark.parametrize("flags, messages", [
    (["--backbone", "resnet"], ["Received: backbone='resnet'; expected one of vgg19, mobilenetv2, densenet121",
                                "small"]),
    (["--rule", "soft"], ["Received: rule='soft'; expected one of hard, bdsl, wdsl, pepr, gsl, dhl"]),
    (["--alpha", "1.5"], ["Received: alpha=1.5; expected a value in [0, 1]"]),
    (["--alpha", "0.5:x"], ["Received: alpha='0.5:x'"]),
    (["--rounds", "0"], ["--rounds"]),
])
def test_bad_flags_exit_2(records, tmp_path, flags, messages):
    out = tmp_path / "run"
    _refused(invoke("refine", records, "-o", out, *flags), out, *messages)
    assert not out.exists()


def test_config_file_with_an_unknown_key_exits_2(records, tmp_path):
    (tmp_path / "c.toml").write_text('backbone = "small"\ncolour = "red"\n')
    out = tmp_path / "run"
    _refused(invoke("refine", records, "-o", out, "--config", tmp_path / "c.toml"), out,
             "unknown key(s) ['colour']")
    assert not out.exists()


def test_records_of_another_schema_version_exit_2(records, tmp_path):
    rec = shutil.copytree(records, tmp_path / "rec")
    data = json.loads((rec / "manifest.json").read_text())
    data["schema_version"] = 0
    (rec / "manifest.json").write_text(json.dumps(data))
    out = tmp_path / "run"
    _refused(invoke("refine", rec, "-o", out, "--backbone", "small"), out, "Received: schema_version=0",
             "Rebuild the records")
    assert not out.exists()


def test_records_failing_verification_exit_2(records, tmp_path):
    rec = shutil.copytree(records, tmp_path / "rec")
    shard = max((rec / "shards").iterdir())
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    out = tmp_path / "run"
    _refused(invoke("refine", rec, "-o", out, "--backbone", "small"), out, "fail verification",
             f"shards/{shard.name}", "rebuild the records")
    assert not out.exists()


def test_a_fold_missing_a_class_exits_2(synthetic_corpus, tmp_path):
    root, manifest = synthetic_corpus
    rows = manifest.read_text().splitlines()
    few = tmp_path / "few.csv"  # 2 'sadness' utterances over 3 folds: one fold has none
    few.write_text("\n".join([rows[0]] + [r for r in rows[1:] if "sadness" not in r
                                          or r.split(",")[0].endswith(("_00.wav", "_01.wav"))]) + "\n")
    rec = _build((root, few), tmp_path / "rec", "--folds", "3")
    out = tmp_path / "run"
    _refused(invoke("refine", rec, "-o", out, "--backbone", "small"), out, "no utterances of class(es) 'sadness'",
             "--folds")
    assert not out.exists()


def test_fewer_than_three_folds_exit_2(synthetic_corpus, tmp_path):
    rec = _build(synthetic_corpus, tmp_path / "rec", "--folds", "2")
    out = tmp_path / "run"
    _refused(invoke("refine", rec, "-o", out, "--backbone", "small"), out, "folds=2; refine needs at least 3")
    assert not out.exists()


def test_a_foreign_output_folder_exits_2(records, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _refused(invoke("refine", records, "-o", out, "--backbone", "small"), out,
             f"Received: output={str(out)!r}; expected a new or empty folder")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_settings_are_checked_without_loading_tensorflow():
    """Reading the registries and checking a config (e.g. for --help or a wrong flag) needs no TensorFlow."""
    import subprocess
    import sys

    code = ("import sys\nfrom emotion_refinery.refine.settings import RefineConfig\n"
            "try:\n    RefineConfig(backbone='resnet')\nexcept Exception as e:\n    print(e)\n"
            "import cli.refine\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Received: backbone='resnet'; expected one of" in out
    assert out.strip().endswith("False False")


def test_help_defaults_come_from_the_settings_and_presets():
    from emotion_refinery.data.feature_config import PRESETS
    from emotion_refinery.refine.settings import RefineConfig

    text = " ".join(CliRunner().invoke(main, ["refine", "--help"], terminal_width=1000).output.split())
    assert f"[default: {RefineConfig.rounds}; preset cpu 1]" in text
    cpu = PRESETS["cpu"].training
    assert f"[default: {RefineConfig.epochs}; preset" in text and f"cpu {cpu['epochs']}]" in text
    assert f"cpu {cpu['backbone']}" in text and f"cpu {cpu['train_stride']}]" in text


def test_every_setting_is_a_flag_generated_from_the_dataclass():
    import click

    from cli.refine import refine
    from emotion_refinery.refine.settings import CHOICES, FIELDS, HELP

    assert set(HELP) == FIELDS - {"preset"}  # a new setting without help (or a stale entry) fails here
    params = {p.name: p for p in refine.params}
    for name in FIELDS:
        assert name in params, name
        assert params[name].default is None  # unset flags leave the preset and the config file in force
    for name, values in CHOICES.items():
        assert isinstance(params[name].type, click.Choice) and tuple(params[name].type.choices) == tuple(values)
    assert params["spec_augment"].is_bool_flag and params["spec_augment"].secondary_opts == ["--no-spec-augment"]
    assert params["epochs"].type.min == 1 and params["patience"].type.min == 0


@pytest.mark.parametrize("flags, expected", [
    (["--speaker-norm"], "on"), (["--speaker-norm", "auto"], "auto"), (["--speaker-norm", "off"], "off"),
    (["--no-speaker-norm"], "off"), (["--speaker-norm", "--epochs", "2"], "on"), ([], None),
])
def test_speaker_norm_takes_a_mode_and_stays_a_switch(tmp_path, flags, expected):
    from cli.refine import _former_switches, refine

    params = refine.make_context("refine", [str(tmp_path), "-o", str(tmp_path / "run"), *flags]).params
    _former_switches(params)
    assert params["speaker_norm"] == expected and "no_speaker_norm" not in params


def test_speaker_norm_on_and_off_at_once_exit_2(records, tmp_path):
    out = tmp_path / "run"
    _refused(invoke("refine", records, "-o", out, "--speaker-norm", "on", "--no-speaker-norm"), out,
             "Received: --speaker-norm on and --no-speaker-norm; expected one of them")
    _refused(invoke("refine", records, "-o", out, "--speaker-norm", "sometimes"), out, "'sometimes' is not one of")
