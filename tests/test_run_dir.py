"""The run directory's one owner of its files: report.json, the plots folder, the label shards, the open run."""

from __future__ import annotations

import pytest

from emotion_refinery.errors import EmorefineError
from emotion_refinery.outputs.report import confusion_table
from emotion_refinery.records.run_dir import PLOTS_DIR, OpenRun, RunDir, label_shard_path, load_run
from emotion_refinery.util.markdown import markdown_table


def test_a_run_without_report_says_no_round_has_finished(tmp_path):
    run = RunDir(tmp_path)
    assert not run.has_report and not run.is_run
    with pytest.raises(EmorefineError, match=r"Received: run=.*; it has no report.json \(no round has finished\)"):
        run.report()
    (tmp_path / "report.json").write_text('{"rounds": []}')
    assert run.report() == {"rounds": []}
    assert run.plots == tmp_path / PLOTS_DIR


def test_an_open_run_is_passed_on_unchanged_and_unpacks(tmp_path):
    opened = OpenRun(RunDir(tmp_path), {"config": {"seed": 1}}, manifest=None)
    assert load_run(opened) is opened
    run, record, manifest = opened
    assert (run.root, record, manifest, opened.method, opened.config) == (tmp_path, opened.record, None, "refine",
                                                                          {"seed": 1})
    with pytest.raises(EmorefineError, match="it has no config.json"):
        load_run(tmp_path)


def test_a_label_shard_is_named_as_its_feature_shard(tmp_path):
    assert label_shard_path(tmp_path, {"path": "shards/fold-01-003.tfrecord"}) == tmp_path / "fold-01-003.tfrecord"


def test_markdown_tables():
    assert confusion_table(["a", "b"], [[1, 2], [3, 4]]) == ["| | a | b |", "|---|---:|---:|", "| a | 1 | 2 |",
                                                             "| b | 3 | 4 |"]
    assert markdown_table(["x", "y"], [[1, "z"]], "rl") == ["| x | y |", "|---:|---|", "| 1 | z |"]
