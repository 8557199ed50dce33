"""Exit statuses are mapped once, in the command group, from the error classes."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cli.main import Group
from emotion_refinery import errors


@pytest.mark.parametrize("error, status", [
    (errors.NothingUsableError, 1), (errors.TrainingError, 1), (errors.AudioError, 1),  # the work failed
    (errors.RecordsError, 2), (errors.CorpusError, 2), (errors.EmorefineError, 2),  # bad input or state
])
def test_the_group_maps_error_classes_to_exit_statuses(error, status):
    group = Group()

    @group.command()
    def fails():
        raise error("what went wrong")

    result = CliRunner().invoke(group, ["fails"])
    assert result.exit_code == status and result.output == "Error: what went wrong\n"


def test_other_exceptions_are_not_hidden():
    group = Group()

    @group.command()
    def breaks():
        raise KeyError("bug")

    result = CliRunner().invoke(group, ["breaks"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)  # a traceback, not a message


def test_click_errors_keep_their_status():
    group = Group()

    @group.command()
    @click.option("--n", type=int)
    def takes(n):
        pass

    assert CliRunner().invoke(group, ["takes", "--n", "x"]).exit_code == 2
