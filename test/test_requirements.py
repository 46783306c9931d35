"""The requirements files: every requirement has a release that pip finds for Python 3.10, 3.11 and
3.12 on Linux x86_64, the robot's also for 3.10 on aarch64 (a Jetson with JetPack 6), the robot
never pins torch, and docs/robot.md's install steps are the ones CI runs.

The release checks ask the package index through pip (`pip index versions` with the target's
interpreter version, platform tags and binary-only, as `pip install --python-version ...
--platform ... --only-binary=:all:` would search it); they skip when PyPI cannot be reached.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12")
HOST_FILES = ("requirements.txt", "requirements-test.txt")
ROBOT_FILES = ("requirements-robot.txt", "requirements-robot-build.txt", "requirements-test.txt")
# Ubuntu 22.04 (JetPack 6, Humble) has glibc 2.35; manylinux tags are listed, not implied, to pip.
GLIBC_MINORS = range(35, 16, -1)
BACKPORTS = {"tomli"}  # only where the standard library lacks it (tomllib from 3.11 on)
SDIST_ONLY = {("aarch64", "compressai")}  # no aarch64 wheel: the robot builds the sdist (docs/robot.md)

# Runs `pip index versions` for many packages in one interpreter: one JSON line per package.
INDEX_SCRIPT = """
import contextlib, io, json, sys
from pip._internal.cli.main import main as pip_main
common, queries = json.loads(sys.argv[1])
for name, extra in queries:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = pip_main(["index", "versions", name, "--disable-pip-version-check", *common, *extra])
    versions = []
    for line in out.getvalue().splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.split(":", 1)[1].split(",")]
    print(json.dumps({"name": name, "status": status, "versions": versions}), flush=True)
"""


def marker_env(python: str, machine: str) -> dict[str, str]:
    return {
        "python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
        "platform_python_implementation": "CPython", "platform_machine": machine, "platform_system": "Linux",
        "sys_platform": "linux", "os_name": "posix",
    }


def requirements(names: tuple[str, ...], env: dict[str, str]) -> list[Requirement]:
    """The requirements of these files for `env`: `-r` includes followed, markers applied."""
    found: list[Requirement] = []
    for name in names:
        for raw in (REPO / name).read_text().splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("-r "):
                found += requirements((line[3:].strip(),), env)
                continue
            assert not line.startswith("-"), f"{name}: option {line!r} (pip would apply it to every file)"
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                found.append(req)
    return found


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def pypi_unreachable() -> str | None:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15).close()
    except OSError as exc:
        return f"PyPI is unreachable ({exc}): the release checks need the package index"
    return None


def pip_target(python: str, machine: str) -> list[str]:
    tag = python.replace(".", "")
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS] + [f"manylinux2014_{machine}"]
    return ["--python-version", python, "--implementation", "cp", "--abi", f"cp{tag}", "--abi", "abi3",
            "--abi", "none", *[arg for p in platforms for arg in ("--platform", p)]]


# The robot (JetPack 6) is Python 3.10 on aarch64; hosts run 3.10, 3.11 or 3.12 on x86_64.
TARGETS = [(python, "x86_64", HOST_FILES) for python in PYTHONS] + [("3.10", "aarch64", ROBOT_FILES)]


def _queries(python: str, machine: str, files: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    names = sorted({req.name for req in requirements(files, marker_env(python, machine))})
    return [(name, ["--no-binary", ":all:"] if (machine, key(name)) in SDIST_ONLY else ["--only-binary", ":all:"])
            for name in names]


@lru_cache(maxsize=1)
def _index_runs() -> dict[tuple[str, str], tuple[int, subprocess.Popen]]:
    """One pip run per target, all started at once: they spend their time waiting on the index."""
    runs = {}
    for python, machine, files in TARGETS:
        queries = _queries(python, machine, files)
        command = [sys.executable, "-c", INDEX_SCRIPT, json.dumps([pip_target(python, machine), queries])]
        runs[(python, machine)] = (
            len(queries), subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    return runs


def index_versions(python: str, machine: str) -> dict[str, dict]:
    """Package -> {"versions": [...]}: what pip finds for this target, newest first."""
    count, run = _index_runs()[(python, machine)]
    stdout, stderr = run.communicate(timeout=900)
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(rows) == count, f"pip index versions stopped early:\n{stderr[-2000:]}"
    return {key(row["name"]): row for row in rows}


@pytest.mark.slow
@pytest.mark.parametrize("python,machine,files", TARGETS, ids=[f"{m}-py{p}" for p, m, _ in TARGETS])
def test_every_requirement_has_a_release(python: str, machine: str, files: tuple[str, ...]) -> None:
    reason = pypi_unreachable()
    if reason:
        pytest.skip(reason)
    reqs = requirements(files, marker_env(python, machine))
    found = index_versions(python, machine)
    missing = []
    for req in reqs:
        row = found[key(req.name)]
        if not any(req.specifier.contains(version) for version in row["versions"]):
            have = ", ".join(row["versions"][:5]) or "none"
            missing.append(f"{req} (newest releases pip finds for Python {python} on {machine}: {have})")
    assert not missing, "no release for:\n" + "\n".join(missing)


def test_every_python_gets_the_same_lines() -> None:
    """A gap or an overlap in the python_version markers would drop a package or pin it twice."""
    for machine, files in (("x86_64", HOST_FILES), ("aarch64", ROBOT_FILES)):
        counts = {python: Counter(key(req.name) for req in requirements(files, marker_env(python, machine))
                                  if key(req.name) not in BACKPORTS)
                  for python in PYTHONS}
        assert counts["3.10"] == counts["3.11"] == counts["3.12"], f"{machine}: {counts}"


def test_robot_does_not_pin_torch_and_needs_no_host_packages() -> None:
    env = marker_env("3.10", "aarch64")
    robot = {key(req.name): req for req in requirements(("requirements-robot.txt",), env)}
    for name in ("torch", "torchvision"):
        assert robot[name].specifier, f"{name}: the robot needs a range"
        assert not [s for s in robot[name].specifier if s.operator in ("==", "===")], f"{name} is pinned"
    host_only = {key(req.name) for req in requirements(("requirements.txt",), env)} - set(robot) - {"compressai"}
    assert {"matplotlib", "bjontegaard", "rich"} <= host_only
    assert "matplotlib" not in robot


def test_host_pins_torch_inside_the_robot_range() -> None:
    env = marker_env("3.11", "x86_64")
    robot = {key(req.name): req.specifier for req in requirements(("requirements-robot.txt",), env)}
    pins = {key(req.name): spec.version for req in requirements(("requirements.txt",), env)
            for spec in req.specifier if spec.operator == "=="}
    for name in ("torch", "torchvision"):
        assert robot[name].contains(pins[name]), f"the host's {name}=={pins[name]} is outside the robot's {robot[name]}"


# ------------------------------------------------------------------------------------- docs and CI
def doc_steps() -> list[str]:
    """The commands of docs/robot.md's marked install block (CI runs them: .ci/robot.sh)."""
    text = (REPO / "docs" / "robot.md").read_text()
    block = text.split("<!-- robot-install: begin -->", 1)[1].split("<!-- robot-install: end -->", 1)[0]
    code = "\n".join(re.findall(r"```bash\n(.*?)```", block, flags=re.S))
    return [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_docs_robot_steps_are_what_ci_runs() -> None:
    steps = doc_steps()
    assert any("--no-build-isolation" in step and "compressai" in step for step in steps)
    ci = [line.strip() for line in (REPO / ".ci" / "robot.sh").read_text().splitlines()]
    position = 0
    for step in steps:
        assert step in ci[position:], f"docs/robot.md step not run (in this order) by .ci/robot.sh: {step}"
        position = ci.index(step, position) + 1


def test_ci_torch_for_python_310_is_pinned_inside_the_robot_range() -> None:
    """The CI-only stand-in for the JetPack wheel is pinned, and the robot's range admits it."""
    robot = {key(req.name): req.specifier
             for req in requirements(("requirements-robot.txt",), marker_env("3.10", "x86_64"))}
    pins = requirements((".ci/platform-torch-py310.txt",), marker_env("3.10", "x86_64"))
    assert {key(req.name) for req in pins} == {"torch", "torchvision"}
    for req in pins:
        (spec,) = req.specifier
        assert spec.operator == "==" and robot[key(req.name)].contains(spec.version), req
