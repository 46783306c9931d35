"""README tables come from the results files, never by hand: `imgcomp readme [--check]`.

A block in the README::

    <!-- results: benchmarks/results/eval/rd.md table 1 -->
    | ... the first markdown table of that file, verbatim ... |
    <!-- /results -->

`render` replaces every block's body by the named table of the named file (1 = the file's first
table), so rerunning a benchmark and then `imgcomp readme` is the only way a table changes.
`--check` (and test/test_readme_tables.py) fails when any block differs from its file.
The shipped-models table is itself a results file, `benchmarks/results/models/models.md`, written
from the weights manifest and the latest `imgcomp eval --split heldout` results.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(
    r"(?P<open><!-- results: (?P<path>\S+) table (?P<index>\d+) -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
    re.S,
)


MODELS_TABLE = Path("benchmarks/results/models/models.md")
MANIFEST = Path("imgcomp/weights/manifest.json")
EVAL_RESULTS = Path("benchmarks/results/eval-heldout/rd.json")  # the held-out-source split (#17)


class ReadmeTablesError(RuntimeError):
    """A README block names a results file or table that does not exist."""


@dataclass(frozen=True)
class StaleBlock:
    path: str
    index: int


def tables_of(markdown: str) -> list[str]:
    """The markdown tables of a text, each as its lines joined with a final newline."""
    tables: list[str] = []
    current: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current) + "\n")
            current = []
    if current:
        tables.append("\n".join(current) + "\n")
    return tables


def table_from(root: Path, path: str, index: int) -> str:
    source = root / path
    if not source.is_file():
        raise ReadmeTablesError(f"README names {path}, which does not exist")
    tables = tables_of(source.read_text(encoding="utf-8"))
    if not 1 <= index <= len(tables):
        raise ReadmeTablesError(f"README names table {index} of {path}, which has {len(tables)} table(s)")
    return tables[index - 1]


def render(readme: str, root: Path = REPO) -> tuple[str, list[StaleBlock]]:
    """The README with every results block refreshed, and the blocks that were stale."""
    stale: list[StaleBlock] = []

    def refresh(match: re.Match[str]) -> str:
        table = table_from(root, match["path"], int(match["index"]))
        if match["body"] != table:
            stale.append(StaleBlock(match["path"], int(match["index"])))
        return match["open"] + table + match["close"]

    return BLOCK.sub(refresh, readme), stale


def _steps(entry: dict) -> str:
    stages = [*entry.get("earlier_training", []), entry]
    return ", then ".join(
        f"{stage['trained_steps']:_} steps (batch {stage['batch_size']}, {stage['crop']}² crops)".replace("_", " ")
        for stage in stages
        if "trained_steps" in stage
    )


def models_table(root: Path = REPO) -> str:
    """The shipped models (manifest) with their top level measured by the latest `imgcomp eval`."""
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    evaluated = root / EVAL_RESULTS
    curves = json.loads(evaluated.read_text(encoding="utf-8"))["curves"] if evaluated.is_file() else {}
    lines = [
        f"Written by `imgcomp readme` from `{MANIFEST}` and `{EVAL_RESULTS}` (top level: the highest quality level there).",
        "",
        "| model | family | levels | distortion | training | weights (KiB) | top level on the held-out split: PSNR (dB) / MS-SSIM (bpp) |",
        "|---|---|---:|---|---|---:|---|",
    ]
    for name, entry in sorted(manifest.items()):
        weights = root / MANIFEST.parent / entry["file"]
        size = f"{weights.stat().st_size / 1024:.0f}" if weights.is_file() else "–"
        top = max(curves.get(name, []), key=lambda point: point["setting"], default=None)
        measured = f"{top['psnr']:.2f} / {top['ms_ssim']:.4f} ({top['bpp']:.3f})" if top else "– (fixed rate: see `imgcomp compare`)"
        lines.append(
            f"| `{name}` | {entry['family']} | {entry.get('levels', 1)} | {entry.get('distortion', '–')} | {_steps(entry)} | {size} | {measured} |"
        )
    return "\n".join(lines) + "\n"


def main(check: bool, readme_path: Path = README) -> int:
    root = readme_path.parent
    models = models_table(root)
    models_path = root / MODELS_TABLE
    models_stale = not models_path.is_file() or models_path.read_text(encoding="utf-8") != models
    text = readme_path.read_text(encoding="utf-8")
    if check:
        _, stale = render(text, root)
        if models_stale:
            print(f"{MODELS_TABLE} differs from the manifest and eval results; run `imgcomp readme`")
        for block in stale:
            print(f"{readme_path.name}: table {block.index} of {block.path} differs; run `imgcomp readme`")
        return 1 if stale or models_stale else 0
    if models_stale:
        models_path.parent.mkdir(parents=True, exist_ok=True)
        models_path.write_text(models, encoding="utf-8")
    rendered, stale = render(text, root)
    if rendered != text:
        readme_path.write_text(rendered, encoding="utf-8")
    print(f"{readme_path.name}: {len(BLOCK.findall(text))} results table(s), {len(stale)} refreshed")
    return 0
