"""What differs between operating systems and Python versions: the CPU count, the TOML parser."""

from __future__ import annotations

import os
import sys
import types

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from emotion_refinery.refine.settings import load_config_file
from emotion_refinery.util.processes import cpu_count


def test_cpu_count_without_sched_getaffinity(monkeypatch):
    assert cpu_count() >= 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS and Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpu_count() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable"
    assert cpu_count() == 1


def test_toml_config_without_tomllib_uses_tomli(monkeypatch, tmp_path):
    # Python 3.10 has no tomllib; the tomli package (a setup.py dependency there) is the same parser.
    calls = []
    tomli = types.ModuleType("tomli")
    tomli.loads = lambda text: calls.append(text) or tomllib.loads(text)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib → ImportError
    monkeypatch.setitem(sys.modules, "tomli", tomli)
    (tmp_path / "c.toml").write_text('backbone = "small"\nepochs = 3\n')
    assert load_config_file(tmp_path / "c.toml") == {"backbone": "small", "epochs": 3} and len(calls) == 1
