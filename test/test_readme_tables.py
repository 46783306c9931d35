"""The README's tables are the results files' tables (`imgcomp readme`), never hand-copied."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgcomp.eval import readme_tables
from imgcomp.eval.readme_tables import BLOCK, ReadmeTablesError, models_table, render, tables_of

REPO = Path(__file__).resolve().parent.parent


def test_every_readme_table_block_matches_its_results_file() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(BLOCK.findall(text)) >= 8
    rendered, stale = render(text, REPO)
    assert stale == [], f"stale README tables (run `python -m imgcomp readme`): {stale}"
    assert rendered == text
    assert (REPO / readme_tables.MODELS_TABLE).read_text(encoding="utf-8") == models_table(REPO)


def _copy_of_the_project(tmp_path: Path) -> Path:
    for relative in ("README.md", "benchmarks/results", "imgcomp/weights/manifest.json"):
        source, target = REPO / relative, tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    return tmp_path


def test_a_changed_results_file_makes_the_check_fail_and_refresh_fixes_it(tmp_path: Path, capsys) -> None:
    root = _copy_of_the_project(tmp_path)
    demo = root / "benchmarks/results/demo/report.md"
    demo.write_text(demo.read_text(encoding="utf-8").replace("| PSNR (dB) |", "| PSNR (dB, changed) |"), encoding="utf-8")
    assert readme_tables.main(check=True, readme_path=root / "README.md") == 1
    assert "benchmarks/results/demo/report.md differs" in capsys.readouterr().out
    assert readme_tables.main(check=False, readme_path=root / "README.md") == 0
    assert "PSNR (dB, changed)" in (root / "README.md").read_text(encoding="utf-8")
    assert readme_tables.main(check=True, readme_path=root / "README.md") == 0


def test_a_new_eval_result_changes_the_shipped_models_table(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    results = root / readme_tables.EVAL_RESULTS
    evaluated = json.loads(results.read_text(encoding="utf-8"))
    max(evaluated["curves"]["hyperprior-mse"], key=lambda point: point["setting"])["psnr"] += 10.0
    results.write_text(json.dumps(evaluated), encoding="utf-8")
    assert models_table(root) != models_table(REPO)
    assert readme_tables.main(check=True, readme_path=root / "README.md") == 1


def test_a_block_naming_a_missing_table_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.md").write_text("| a |\n|---|\n| 1 |\n", encoding="utf-8")
    with pytest.raises(ReadmeTablesError, match="table 2 of r.md, which has 1 table"):
        render("<!-- results: r.md table 2 -->\n<!-- /results -->", tmp_path)
    with pytest.raises(ReadmeTablesError, match="nope.md, which does not exist"):
        render("<!-- results: nope.md table 1 -->\n<!-- /results -->", tmp_path)


def test_tables_are_split_at_non_table_lines() -> None:
    text = "# t\n| a |\n|---|\n\ntext\n| b |\n|---|\n| 2 |"
    assert tables_of(text) == ["| a |\n|---|\n", "| b |\n|---|\n| 2 |\n"]
