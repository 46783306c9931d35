"""The README's layout table matches the folders: every subpackage of `imgcomp/` has a row, and
every module a row names (a lowercase name in backticks) exists in that folder."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layout_rows() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(imgcomp/[a-z_/]*)`[^|]*\| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_subpackage_has_a_row() -> None:
    rows = layout_rows()
    packages = sorted(
        f"imgcomp/{p.parent.relative_to(REPO / 'imgcomp')}/"
        for p in (REPO / "imgcomp").glob("*/__init__.py")
    )
    assert packages, "no subpackages found"
    assert [p for p in packages if p not in rows] == []


def test_every_module_a_row_names_exists() -> None:
    rows = layout_rows()
    assert "imgcomp/" in rows and "imgcomp/models/" in rows
    missing = []
    for folder, what in rows.items():
        for name in re.findall(r"`([a-z_]+)`", what):
            base = REPO / folder
            if not ((base / f"{name}.py").exists() or (base / name / "__init__.py").exists()):
                missing.append(f"{folder}{name}")
    assert missing == []
