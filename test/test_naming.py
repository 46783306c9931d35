"""Names that say what things are: the quality-level convention, and no names from the project's history.

Quality is 1-based (1 = fewest bits) everywhere a user, a message, a payload or the codec sees it;
the models index their per-level gains 0-based. So the models and their inference backends take a
parameter named `level_index` and nothing there is called plain `level`, which would leave the
reader to guess the base. And the seed study's families are the *fixed-rate* families: no module,
class, function or parameter is named after "study" (prose may still cite the study).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for pkg in ("imgcomp", "imgcomp_ros", "imgcomp_encoder", "imgcomp_decoder") for p in (REPO / pkg).rglob("*.py"))
ZERO_BASED_PACKAGES = ("imgcomp/models", "imgcomp/inference")


def _names(tree: ast.AST) -> list[tuple[str, int]]:
    """Every name a module defines: modules' functions, classes, parameters, assigned names."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.name, node.lineno))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            out += [(arg.arg, node.lineno) for arg in a.posonlyargs + a.args + a.kwonlyargs]
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.append((node.id, node.lineno))
    return out


def test_the_sources_were_found() -> None:
    assert len(SOURCES) > 50 and any(p.parts[-2] == "models" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_is_named_after_the_study(path: Path) -> None:
    assert "study" not in path.name.lower()
    bad = [f"{name} (line {line})" for name, line in _names(ast.parse(path.read_text())) if "study" in name.lower()]
    assert not bad, f"{path.relative_to(REPO)}: name the family (fixed_rate), not the history: {bad}"


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if str(p.relative_to(REPO)).startswith(ZERO_BASED_PACKAGES)], ids=lambda p: p.name
)
def test_models_take_a_zero_based_level_index_never_a_plain_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = [
        f"{node.name} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(arg.arg in ("level", "quality") for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs)
    ]
    assert not bad, f"{path.relative_to(REPO)}: name the 0-based argument `level_index`: {bad}"


def test_the_codec_takes_a_one_based_quality_and_converts_once() -> None:
    """The model layer rejects an index past its levels: `quality` = levels reaches it, levels + 1 does not."""
    from imgcomp.codec import Codec

    codec = Codec("factorized-mse")
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    top = codec.analyse_image(image, quality=codec.levels)
    assert top.quality == codec.levels
    with pytest.raises(ValueError, match="1.."):
        codec.analyse_image(image, quality=0)
    with pytest.raises(ValueError, match="0-based"):
        codec.net.analyse(top.x, codec.levels)
