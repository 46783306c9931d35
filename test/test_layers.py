"""The architecture, checked: every import between the project's modules follows the layer order.

`LAYERS` lists the layers from the bottom up; each layer holds one or more units (a module or a
package, matched by the longest prefix). A module may import its own unit and the layers below
it, never a layer above (an upward import) nor another unit of its own layer (a sideways one:
this is what keeps the two node packages from importing each other). Imports inside functions
and under ``TYPE_CHECKING`` count as well. On top of that, the module graph has no cycle, no
module imports a private (``_name``) name from another module, and no module is over
`MAX_LINES` lines.

A new module must fall into a unit listed here: the failure says where to add it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("imgcomp", "imgcomp_ros", "imgcomp_encoder", "imgcomp_decoder")
MAX_LINES = 600

# Bottom to top. The light formats first, then what the codec is built of, the codec, and the
# groups built on it; the ROS side last.
LAYERS: list[tuple[str, ...]] = [
    ("imgcomp.bitstream", "imgcomp.defaults", "imgcomp.padding", "imgcomp.image", "imgcomp.metrics", "imgcomp.video"),
    ("imgcomp.models",),
    ("imgcomp.classical",),  # JPEG, WebP, AVIF, JPEG XL behind Codec's interface (uses models.jxl_header)
    ("imgcomp.inference",),
    ("imgcomp.codec",),
    ("imgcomp.temporal",),
    ("imgcomp", "imgcomp.launch_args"),  # the package itself (`from imgcomp import Codec`); launch-file checks
    ("imgcomp.data",),
    ("imgcomp.multitask.scenes",),  # rendered scenes: the multi-task data and the temporal trainer's sequences
    ("imgcomp.training",),
    ("imgcomp.multitask",),
    ("imgcomp.stream",),
    ("imgcomp.runtime_check",),
    ("imgcomp.rosbag",),
    ("imgcomp.eval",),
    ("imgcomp.cli",),
    ("imgcomp.__main__",),
    ("imgcomp_ros",),
    ("imgcomp_encoder", "imgcomp_decoder"),
]
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def unit_of(module: str) -> str | None:
    """The longest unit of `LAYERS` that is `module` or a package above it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in LAYER_OF:
            return candidate
    return None


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[tuple[str, int, list[str]]]:
    """(imported project module, line, names taken from it) for every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            if target.split(".")[0] not in PACKAGES:
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(f"{target}.{n}", node.lineno, []) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                out.append((target, node.lineno, rest))
    return out


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer() -> None:
    missing = [m for m in MODULES if unit_of(m) is None]
    assert not missing, f"add these modules' package to LAYERS in {Path(__file__).name}: {missing}"


def test_no_upward_or_sideways_import() -> None:
    bad = []
    for module, edges in GRAPH.items():
        unit = unit_of(module)
        for target, line, _ in edges:
            target_unit = unit_of(target)
            if unit is None or target_unit is None or target_unit == unit:
                continue
            if LAYER_OF[target_unit] >= LAYER_OF[unit]:
                kind = "upward" if LAYER_OF[target_unit] > LAYER_OF[unit] else "sideways"
                bad.append(f"{MODULES[module].relative_to(REPO)}:{line}: {kind} import of {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    edges = {m: sorted({t for t, _, _ in GRAPH[m] if t in MODULES and t != m}) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state:
                cycle = visit(t)
                if cycle:
                    return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(MODULES):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_imported_from_another_module() -> None:
    bad = [
        f"{MODULES[module].relative_to(REPO)}:{line}: {name} from {target}"
        for module, edges in GRAPH.items()
        for target, line, names in edges
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines (at most {MAX_LINES})"


def test_the_walk_sees_the_bad_cases(tmp_path) -> None:
    """The checks above are not vacuous: the layer table orders what it should."""
    assert LAYER_OF[unit_of("imgcomp.stream.decoder_core")] > LAYER_OF[unit_of("imgcomp.codec")]
    assert unit_of("imgcomp.multitask.scenes.render") == "imgcomp.multitask.scenes"  # longest prefix wins
    assert unit_of("imgcomp.multitask.train") == "imgcomp.multitask"
    assert unit_of("imgcomp_decoder.node") != unit_of("imgcomp_encoder.node")
    assert LAYER_OF["imgcomp_decoder"] == LAYER_OF["imgcomp_encoder"]  # so either importing the other fails
    assert any(t == "imgcomp_ros.node_base" for t, _, _ in GRAPH["imgcomp_decoder.node"])
