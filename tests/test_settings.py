"""The settings family: refine, lcw and mlee check their values with the same code and make their options from
their dataclasses and tables (help, choices, ranges) the same way."""

from __future__ import annotations

import dataclasses

import click
import pytest

from emotion_refinery.errors import EmorefineError


def _families():
    from cli.lcw import lcw
    from cli.mlee import mlee
    from cli.refine import refine
    from emotion_refinery.methods import lcw as lcw_settings
    from emotion_refinery.methods import mlee as mlee_settings
    from emotion_refinery.refine import settings as refine_settings

    return [(refine, refine_settings.RefineConfig, refine_settings),
            (lcw, lcw_settings.LCWConfig, lcw_settings),
            (mlee, mlee_settings.MLEEConfig, mlee_settings)]


@pytest.mark.parametrize("index", range(3), ids=["refine", "lcw", "mlee"])
def test_every_setting_is_an_option_made_from_its_tables(index):
    command, settings, module = _families()[index]
    fields = {f.name: f for f in dataclasses.fields(settings)}
    params = {p.name: p for p in command.params}
    assert set(module.HELP) <= set(fields) and set(module.CHOICES) | set(module.RANGES) <= set(fields)
    for name in module.HELP:
        assert name in params, name
        assert module.HELP[name] in params[name].help
    for name, values in module.CHOICES.items():
        assert isinstance(params[name].type, click.Choice) and tuple(params[name].type.choices) == tuple(values)
    for name, r in module.RANGES.items():
        assert params[name].type.range == r, name
    for name, field in fields.items():
        if field.type == "bool" and name in module.HELP:
            assert params[name].is_bool_flag and params[name].secondary_opts == [f"--no-{name.replace('_', '-')}"]


@pytest.mark.parametrize("index", [1, 2], ids=["lcw", "mlee"])
def test_lcw_and_mlee_options_default_to_the_dataclass(index):
    command, settings, module = _families()[index]
    params = {p.name: p for p in command.params}
    for field in dataclasses.fields(settings):
        assert params[field.name].default == field.default, field.name


@pytest.mark.parametrize("index", range(3), ids=["refine", "lcw", "mlee"])
def test_the_shared_checks_refuse_in_the_same_words(index):
    _, settings, module = _families()[index]
    choice = next(iter(module.CHOICES))
    with pytest.raises(EmorefineError, match=rf"Received: {choice}='nothing'; expected one of "):
        settings(**{choice: "nothing"})
    with pytest.raises(EmorefineError, match=r"Received: seed=-1; expected an integer in \[0, 4294967295\]"):
        settings(seed=-1)
    switch = next(f.name for f in dataclasses.fields(settings) if f.type == "bool")
    with pytest.raises(EmorefineError, match=rf"Received: {switch}='yes'; expected true or false"):
        settings(**{switch: "yes"})


def test_planted_noise_is_checked_by_the_share_range():
    from emotion_refinery.data.label_noise import flip_labels
    from emotion_refinery.methods.lcw import LCWConfig
    from emotion_refinery.refine.settings import RefineConfig

    for make in (lambda: flip_labels([0, 1], 2, 1.0), lambda: LCWConfig(label_noise=1.0),
                 lambda: RefineConfig(label_noise=1.0)):
        with pytest.raises(EmorefineError, match=r"Received: label_noise=1.0; expected a share in \[0, 1\)"):
            make()


def test_an_unknown_preset_is_refused_by_the_preset_table():
    from emotion_refinery.refine.settings import resolve_config

    with pytest.raises(EmorefineError, match="Received: preset='nowhere'; expected one of emodb"):
        resolve_config(preset="nowhere")
