"""Read a launch file's structure (its calls and their arguments) without ROS, through `ast`.

CI has no `launch` package, so the launch files are checked as programs, not as text: a call
in a comment, a docstring or an unused string does not count, and an argument is read from the
call it belongs to. The launch files also run for real in test_launch_*.py where ROS 2 is sourced.
"""

from __future__ import annotations

import ast
from pathlib import Path


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of `name` (a plain name or an attribute), anywhere in the tree."""
    return [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


def keyword(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def literal(call: ast.Call, key: str):
    """A keyword argument's literal value, or None when it is absent or not a literal."""
    value = keyword(call, key)
    try:
        return ast.literal_eval(value) if value is not None else None
    except ValueError:
        return None


def source(call: ast.Call, key: str) -> str | None:
    """A keyword argument as (normalised) source code, e.g. `IfCondition(LaunchConfiguration('rviz'))`."""
    value = keyword(call, key)
    return ast.unparse(value) if value is not None else None


def nodes(path: Path) -> dict[str, ast.Call]:
    """The launch_ros `Node(...)` calls of a launch file by executable."""
    return {literal(call, "executable"): call for call in calls(parse(path), "Node")}


def remapped_topics(call: ast.Call) -> set[str]:
    """The literal topic names on either side of a Node's remappings."""
    value = keyword(call, "remappings")
    return {
        element.value
        for pair in getattr(value, "elts", [])
        for element in getattr(pair, "elts", [])
        if isinstance(element, ast.Constant) and isinstance(element.value, str)
    }


def strings(path: Path) -> set[str]:
    """String constants used in the code (the module docstring left out)."""
    tree = parse(path)
    docstring = ast.get_docstring(tree, clean=False)
    return {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != docstring
    }


def called_in(function: str, path: Path) -> set[str]:
    """Names of the functions called inside `function` of a launch file."""
    tree = parse(path)
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    return {getattr(c.func, "id", None) or getattr(c.func, "attr", "") for c in ast.walk(body) if isinstance(c, ast.Call)}


def strings_or_names(path: Path) -> set[str]:
    """String constants and the names the code refers to (e.g. a check function in a loop)."""
    tree = parse(path)
    return strings(path) | {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
