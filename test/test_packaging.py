"""Packaging: the two ROS packages as colcon sees them (Debian's real colcon, catkin_pkg and
setuptools for /usr/bin/python3), and the root package as pip builds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MSGS = REPO / "imgcomp_msgs"
# The documented build paths: colcon does not look below a folder that is itself a package.
BASE_PATHS = [str(REPO), str(MSGS)]

ENTRY_POINTS = {
    "imgcomp": "imgcomp.cli.main:main",
    "encoder_node": "imgcomp_encoder.node:main",
    "decoder_node": "imgcomp_decoder.node:main",
    "multitask_node": "imgcomp_decoder.multitask_node:main",
}
EXEC_DEPENDS = [
    "rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "imgcomp_msgs", "launch",
    "launch_ros", "python3-numpy", "python3-opencv", "python3-yaml", "python3-torch",
]
# No ament linters: ruff lints (`make lint`), and a declared linter that nothing runs misleads.
TEST_DEPENDS = ["python3-pytest", "launch_testing", "launch_testing_ros"]
DEBIAN_HINT = (
    "Debian: apt-get install colcon python3-colcon-ros python3-colcon-package-information "
    "python3-colcon-package-selection python3-colcon-parallel-executor "
    "python3-colcon-recursive-crawl python3-colcon-python-setup-py python3-colcon-output"
)


def _repo_files(pattern: str) -> list[Path]:
    return sorted(p for p in REPO.glob(pattern) if p.is_file())


def _shared_files() -> dict[str, Path]:
    """share/imgcomp/<relative path> -> source file, for what the checkout has."""
    files = {"package.xml": REPO / "package.xml"}
    for pattern in ("launch/*.launch.py", "config/*.yaml", "config/*.rviz", "config/models/*.yaml",
                    "config/multitask/*.yaml"):
        for path in _repo_files(pattern):
            files[path.relative_to(REPO).as_posix()] = path
    return files


def _package_files() -> list[str]:
    """Package data that must travel with the Python package (relative to site-packages)."""
    patterns = ("imgcomp/msg/*.msg", "imgcomp/weights/*.pt", "imgcomp/weights/*.md",
                "imgcomp/weights/*.json", "imgcomp/weights/multitask/*", "imgcomp/multitask/*.py",
                "imgcomp/multitask/scenes/*.py", "imgcomp/rosbag/messages.py", "imgcomp_encoder/__init__.py",
                "imgcomp_ros/node_base.py", "imgcomp_ros/rosutil.py",
                "imgcomp_decoder/__init__.py")
    return [p.relative_to(REPO).as_posix() for pattern in patterns for p in _repo_files(pattern)]


# ------------------------------------------------------------------------------- colcon
def _script_python(script: str) -> str | None:
    """The interpreter in a script's shebang (colcon runs setup.py with it)."""
    path = shutil.which(script)
    if path is None:
        return None
    first = Path(path).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


def _colcon_skip_reason() -> str | None:
    python = _script_python("colcon")
    if python is None:
        return f"colcon is not installed ({DEBIAN_HINT})"
    probe = subprocess.run(
        [python, "-c", "import colcon_ros, colcon_package_information, colcon_python_setup_py"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return f"colcon lacks its ROS / package-information extensions ({DEBIAN_HINT})"
    return None


@pytest.fixture
def colcon(tmp_path: Path):
    reason = _colcon_skip_reason()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, COLCON_HOME=str(tmp_path / "colcon_home"))  # no user defaults
    env.pop("PYTHONHOME", None)

    def run(*args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["colcon", "--log-base", str(tmp_path / "log"), *args],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=timeout,
        )
        assert result.returncode == 0, f"colcon {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    return run


def _listed(output: str) -> list[tuple[str, str, str]]:
    rows = [line.split("\t") for line in output.splitlines() if line.count("\t") == 2]
    return [(name, path, kind.strip("()")) for name, path, kind in rows]


def test_colcon_finds_both_packages_in_order(colcon) -> None:
    listed = _listed(colcon("list", "--topological-order", "--base-paths", *BASE_PATHS))
    assert listed == [
        ("imgcomp_msgs", str(MSGS), "ros.ament_cmake"),
        ("imgcomp", str(REPO), "ros.ament_python"),
    ]
    # The plain graph lists packages in processing order; the dot graph names the edge.
    graph = colcon("graph", "--base-paths", *BASE_PATHS)
    names = [line.split()[0] for line in graph.splitlines() if line.strip()]
    assert names == ["imgcomp_msgs", "imgcomp"]
    dot = colcon("graph", "--dot", "--base-paths", *BASE_PATHS)
    assert '"imgcomp" -> "imgcomp_msgs"' in dot


def test_colcon_does_not_descend_into_the_root_package(colcon) -> None:
    """Why the README names both base paths: the root package.xml hides imgcomp_msgs/."""
    listed = _listed(colcon("list", "--base-paths", str(REPO)))
    assert [name for name, _, _ in listed] == ["imgcomp"]


@pytest.mark.parametrize("symlink", [False, True], ids=["install", "symlink-install"])
def test_colcon_build_installs_the_ros_layout(colcon, tmp_path: Path, symlink: bool) -> None:
    # imgcomp_msgs needs rosidl_default_generators, which Debian does not ship: build the
    # Python package alone (its exec_depend on imgcomp_msgs is then an external dependency).
    install = tmp_path / "install"
    args = ["build", "--base-paths", str(REPO), "--packages-select", "imgcomp",
            "--build-base", str(tmp_path / "build"), "--install-base", str(install)]
    output = colcon(*args, *(["--symlink-install"] if symlink else []))
    # colcon-ros silently installs the marker and manifest itself when setup.py forgets them.
    assert "doesn't explicitly install" not in output

    prefix = install / "imgcomp"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "imgcomp"
    assert marker.is_file()
    for relative, source in _shared_files().items():
        installed = prefix / "share" / "imgcomp" / relative
        assert installed.is_file(), f"{relative} is not installed to share/imgcomp"
        assert installed.read_bytes() == source.read_bytes()
    for script in ENTRY_POINTS:
        path = prefix / "lib" / "imgcomp" / script
        assert path.is_file() and os.access(path, os.X_OK), f"lib/imgcomp/{script} missing"
    assert not (prefix / "bin").exists(), "scripts must go to lib/imgcomp (setup.cfg), not bin"
    if symlink:
        return

    (site,) = prefix.glob("lib/python3*/site-packages")
    for relative in _package_files():
        assert (site / relative).is_file(), f"{relative} is not installed"
    # The installed metadata points each script at its module.
    python = _script_python("colcon")
    code = ("import importlib.metadata as m, json; print(json.dumps({e.name: e.value for e in "
            "m.distribution('imgcomp').entry_points if e.group == 'console_scripts'}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(site)), check=True)
    assert json.loads(out.stdout) == ENTRY_POINTS


# ----------------------------------------------------------------------------- manifests
MANIFEST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from catkin_pkg.package import parse_package
    out = {}
    for path in sys.argv[1:]:
        warnings = []
        p = parse_package(path, warnings=warnings)
        p.validate(warnings=warnings)
        out[p.name] = {
            "format": p.package_format,
            "build_type": p.get_build_type(),
            "buildtool": [d.name for d in p.buildtool_depends],
            "build": [d.name for d in p.build_depends],
            "exec": [d.name for d in p.exec_depends],
            "test": [d.name for d in p.test_depends],
            "groups": [g.name for g in p.member_of_groups],
            "version": p.version,
            "warnings": warnings,
        }
    print(json.dumps(out))
    """
)


def test_package_manifests_are_valid() -> None:
    python = _script_python("colcon") or "/usr/bin/python3"
    if shutil.which(python) is None or subprocess.run(
        [python, "-c", "import catkin_pkg"], capture_output=True
    ).returncode:
        pytest.skip("catkin_pkg is not installed (Debian: apt-get install python3-catkin-pkg)")
    result = subprocess.run(
        [python, "-c", MANIFEST_SCRIPT, str(REPO / "package.xml"), str(MSGS / "package.xml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    root, msgs = info["imgcomp"], info["imgcomp_msgs"]
    assert root["format"] == msgs["format"] == 3
    assert (root["build_type"], msgs["build_type"]) == ("ament_python", "ament_cmake")
    assert root["exec"] == EXEC_DEPENDS
    assert root["test"] == TEST_DEPENDS
    assert msgs["buildtool"] == ["ament_cmake", "rosidl_default_generators"]
    assert "std_msgs" in msgs["build"] and "std_msgs" in msgs["exec"]
    assert "rosidl_default_runtime" in msgs["exec"]
    assert msgs["groups"] == ["rosidl_interface_packages"]
    assert root["warnings"] == msgs["warnings"] == []


def test_msgs_cmake_generates_the_message() -> None:
    cmake = (MSGS / "CMakeLists.txt").read_text()
    assert "rosidl_generate_interfaces(${PROJECT_NAME}" in cmake
    assert '"msg/CompressedFeatures.msg"' in cmake
    assert "DEPENDENCIES std_msgs" in cmake
    for msg in MSGS.glob("msg/*.msg"):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not listed in CMakeLists.txt"


# ----------------------------------------------------------------------------------- pip
def _copy_checkout(dest: Path) -> Path:
    """The files setup.py reads, so the build never writes into the checkout."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("setup.py", "setup.cfg", "package.xml"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("resource", "imgcomp", "imgcomp_encoder", "imgcomp_decoder", "imgcomp_ros", "launch", "config"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def test_requirements_file_parses() -> None:
    path = REPO / "requirements.txt"
    if not path.exists():
        pytest.skip("no requirements.txt yet")
    from packaging.requirements import Requirement

    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            Requirement(line)  # raises InvalidRequirement


def test_pip_wheel_and_install(tmp_path: Path) -> None:
    pytest.importorskip("wheel", reason="building without isolation needs the wheel package")
    src = _copy_checkout(tmp_path / "src")
    # The robot's files are what the package needs; the host's own lines become the "host" extra.
    (src / "requirements-robot.txt").write_text(
        "# comment\ntorch>=2.5,<3  # a range\nnumpy>=1.24; python_version < \"3.11\"\n"
    )
    (src / "requirements-compressai.txt").write_text("compressai==1.2.8\n")
    (src / "requirements.txt").write_text(
        "# comment\n-r requirements-robot.txt\n--extra-index-url https://example.invalid\n\n"
        "rosbags>=0.10  # bags\n"
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    wheels = tmp_path / "wheels"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("imgcomp-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    for relative in _package_files():
        assert relative in names, f"{relative} missing from the wheel"
    data = f"{dist_info.replace('.dist-info', '.data')}/data/share"
    assert f"{data}/ament_index/resource_index/packages/imgcomp" in names
    for relative in _shared_files():
        assert f"{data}/imgcomp/{relative}" in names
    requires = sorted(line.split(": ", 1)[1] for line in metadata.splitlines()
                      if line.startswith("Requires-Dist: "))
    assert requires == ["compressai==1.2.8", 'numpy>=1.24; python_version < "3.11"',
                        'pytest; extra == "test"', 'rosbags>=0.10; extra == "host"', "torch<3,>=2.5"]
    assert "Provides-Extra: host" in metadata and "Provides-Extra: test" in metadata  # colcon test looks for pytest
    assert "Requires-Python: >=3.10" in metadata
    for name, target in ENTRY_POINTS.items():
        assert f"{name} = {target}" in entry_points

    # Installed without ROS, the core finds its shipped message definition.
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import imgcomp.rosbag.messages as r; assert r.__file__.startswith(%r), r.__file__; "
            "print(sorted(r.typestore().fielddefs[r.MSG_TYPE][1])[0][0])" % str(target))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(target)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "codec"
    assert (target / "bin" / "imgcomp").is_file()


def test_colcon_test_would_run_pytest() -> None:
    """`colcon test` picks pytest only when setup.py names it as a test dependency; otherwise it
    runs `python3 -m unittest`, which finds none of this suite's tests."""
    reason = _colcon_skip_reason()
    if reason:
        pytest.skip(reason)
    code = (
        "import sys; from pathlib import Path\n"
        "from colcon_python_setup_py.package_identification.python_setup_py import get_setup_information\n"
        "from colcon_core.task.python.test import has_test_dependency\n"
        "print(has_test_dependency(get_setup_information(Path(sys.argv[1])), 'pytest'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # colcon's own interpreter, as colcon runs it
    out = subprocess.run([_script_python("colcon"), "-c", code, str(REPO / "setup.py")], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
