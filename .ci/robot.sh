#!/usr/bin/env bash
# CI: the robot's install path on Python 3.10 (JetPack 6 is Ubuntu 22.04 with Python 3.10), from the
# project's own files, then the tests the robot path needs (the files marked `robot`). The steps after
# the stand-in for the JetPack wheel are docs/robot.md's, verbatim (test/test_requirements.py checks).
set -euo pipefail
export PIP_PROGRESS_BAR=off  # plain logs; the pip lines stay verbatim docs/robot.md
cd "$(dirname "$0")/.."
PYTHON310=${PYTHON310:-/root/.pyenv/versions/3.10.13/bin/python3}  # pyenv's, on this kind of machine
[ -x "$PYTHON310" ] || PYTHON310=python3.10
ROBOT_VENV=${ROBOT_VENV:-.venv-robot}
start=$(date +%s)

rm -rf "$ROBOT_VENV"
"$PYTHON310" -m venv "$ROBOT_VENV"
# shellcheck disable=SC1091
source "$ROBOT_VENV/bin/activate"
# Step 1 stand-in: PyPI's torch, pinned for CI only (a Jetson installs NVIDIA's wheel here).
pip install -r .ci/platform-torch-py310.txt
echo "robot path: torch installed after $(( $(date +%s) - start )) s"

python -m imgcomp.runtime_check --constraints > "$VIRTUAL_ENV/platform-torch.txt"
pip install -c "$VIRTUAL_ENV/platform-torch.txt" -r requirements-robot.txt -r requirements-robot-build.txt
pip install --no-build-isolation --no-deps --no-binary compressai -r requirements-compressai.txt
python -m imgcomp.runtime_check
pip install -c "$VIRTUAL_ENV/platform-torch.txt" -r requirements-test.txt
python -m pytest -q -m robot $(grep -lE '^pytestmark = \[?pytest.mark.robot' test/test_*.py)
echo "robot path on Python 3.10: $(( $(date +%s) - start )) s in all"
