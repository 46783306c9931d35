"""The ROS-facing files checked without ROS: parameter files against the nodes' parameter
specs, launch files (syntax, documented arguments, wiring), the rviz config, and docs/ros.md
against the specs and rejection causes. The nodes and launch files themselves run in
test_launch_*.py where ROS 2 is installed."""

from __future__ import annotations

import ast
from pathlib import Path

import launch_ast
import pytest
import yaml

from imgcomp.stream import rejections
from imgcomp.stream.params import DECODER_PARAMS, ENCODER_PARAMS, MULTITASK_PARAMS, ParamSpec, check

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
DOCS = REPO / "docs" / "ros.md"


@pytest.mark.parametrize(
    "name, specs", [("encoder", ENCODER_PARAMS), ("decoder", DECODER_PARAMS), ("multitask", MULTITASK_PARAMS)]
)
def test_parameter_files_match_the_specs(name: str, specs: tuple[ParamSpec, ...]) -> None:
    data = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]
    values = data["/**"]["ros__parameters"]
    assert set(values) == {spec.name for spec in specs}
    for spec in specs:
        # ROS 2 refuses an int for a double parameter: the file's types must be exact.
        assert check(spec, values[spec.name]) is None, (spec.name, values[spec.name])


def test_specs_are_documented_and_consistent() -> None:
    for spec in ENCODER_PARAMS + DECODER_PARAMS + MULTITASK_PARAMS:
        assert spec.description and check(spec, spec.default) is None, spec.name
        if spec.low is not None:
            assert spec.high is not None and spec.low <= spec.high
    assert check(ENCODER_PARAMS[1], 0) is not None  # quality below range
    assert "unknown model" in check(ENCODER_PARAMS[0], "no-such-model")
    assert "must be a float" in check(next(s for s in ENCODER_PARAMS if s.name == "target_bitrate_kbps"), 500)
    head = next(s for s in MULTITASK_PARAMS if s.name == "head")
    assert "unknown multi-task head" in check(head, "multitask-original")  # cannot be fed by a payload


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


def _kw(call: ast.Call, key: str):
    for keyword in call.keywords:
        if keyword.arg == key:
            return ast.literal_eval(keyword.value) if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def _arguments(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    args = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        description = _kw(call, "description")
        if isinstance(description, ast.AST):  # implicit concatenation is a Constant; anything else is not allowed
            description = None
        assert description, f"{path.name}: launch argument {name!r} has no description"
        default = _kw(call, "default_value")
        args[name] = default if isinstance(default, str) else None
    return args


LAUNCH_FILES = ["jetson_encode", "host_decode", "loopback", "record"]


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_compiles_and_documents_its_arguments(name: str) -> None:
    path = LAUNCH / f"{name}.launch.py"
    compile(path.read_text(), str(path), "exec")
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert _arguments(path)
    assert "rclpy" not in path.read_text()


def test_launch_arguments_and_wiring() -> None:
    encode = _arguments(LAUNCH / "jetson_encode.launch.py")
    assert set(encode) == {"camera_topic", "model", "quality", "keyframe_interval", "device", "params_file"}
    assert encode["keyframe_interval"] == ""  # the parameter file's value unless given
    assert encode["camera_topic"] == "/camera/image_raw"
    decode = _arguments(LAUNCH / "host_decode.launch.py")
    assert decode["rviz"] == "false"
    assert decode["features_topic"] == "/camera/image_raw/imgcomp"
    assert decode["output_topic"] == "/camera/image_decoded"
    host_nodes = launch_ast.nodes(LAUNCH / "host_decode.launch.py")
    assert set(host_nodes) == {"decoder_node", "multitask_node", "rviz2"}
    assert launch_ast.source(host_nodes["decoder_node"], "condition") is None
    assert launch_ast.source(host_nodes["rviz2"], "condition") == "IfCondition(LaunchConfiguration('rviz'))"
    assert launch_ast.source(host_nodes["multitask_node"], "condition") == "IfCondition(LaunchConfiguration('multitask'))"
    assert {"imgcomp.rviz", "multitask.yaml"} <= launch_ast.strings(LAUNCH / "host_decode.launch.py")
    assert decode["multitask"] == "false" and decode["perception_ns"] == "/camera"
    record = _arguments(LAUNCH / "record.launch.py")
    assert record["topics"] == "/camera/image_raw/imgcomp" and record["storage"] == "mcap"
    (process,) = launch_ast.calls(launch_ast.parse(LAUNCH / "record.launch.py"), "ExecuteProcess")
    assert launch_ast.source(process, "cmd") == "['ros2', 'bag', 'record', '-s', storage, '-o', out, *extra, *topics]"
    included = {
        ast.literal_eval(call.args[0].args[0].right)
        for call in launch_ast.calls(launch_ast.parse(LAUNCH / "loopback.launch.py"), "PythonLaunchDescriptionSource")
    }
    assert included == {"jetson_encode.launch.py", "host_decode.launch.py"}
    loopback_includes = launch_ast.calls(launch_ast.parse(LAUNCH / "loopback.launch.py"), "IncludeLaunchDescription")
    assert "'keyframe_interval': LaunchConfiguration('keyframe_interval')" in launch_ast.source(loopback_includes[0], "launch_arguments")


def _node_topics(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").endswith("_TOPIC")
    }


def test_node_topics_match_the_launch_remappings_and_docs() -> None:
    encoder = _node_topics(REPO / "imgcomp_encoder" / "node.py")
    decoder = _node_topics(REPO / "imgcomp_decoder" / "node.py")
    assert encoder == {"INPUT_TOPIC": "camera/image_raw", "OUTPUT_TOPIC": "camera/image_raw/imgcomp"}
    assert decoder == {"INPUT_TOPIC": "camera/image_raw/imgcomp", "OUTPUT_TOPIC": "camera/image_decoded"}
    assert encoder["OUTPUT_TOPIC"] == decoder["INPUT_TOPIC"]
    multitask = _node_topics(REPO / "imgcomp_decoder" / "multitask_node.py")
    assert multitask["INPUT_TOPIC"] == encoder["OUTPUT_TOPIC"]
    host_nodes = launch_ast.nodes(LAUNCH / "host_decode.launch.py")
    docs_text = DOCS.read_text()
    for topic in multitask.values():
        assert topic in launch_ast.remapped_topics(host_nodes["multitask_node"]) and f"`{topic}`" in docs_text, topic
    remapped = launch_ast.remapped_topics(launch_ast.nodes(LAUNCH / "jetson_encode.launch.py")["encoder_node"])
    assert set(encoder.values()) <= remapped, "the encoder's topics are not remapped by jetson_encode.launch.py"
    assert set(decoder.values()) <= launch_ast.remapped_topics(host_nodes["decoder_node"])
    docs = DOCS.read_text()
    for topic in {*encoder.values(), *decoder.values()}:
        assert f"`/{topic}`" in docs and f"`{topic}`" in docs


@pytest.mark.parametrize("name, topics", [
    ("imgcomp.rviz", {"/camera/image_raw", "/camera/image_decoded"}),
    ("imgcomp_perception.rviz", {"/camera/image_decoded", "/camera/depth", "/camera/segmentation/color",
                                 "/camera/normals/color"}),
])
def test_rviz_configs_show_their_images(name: str, topics: set[str]) -> None:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    displays = config["Visualization Manager"]["Displays"]
    images = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert images == topics
    assert all(d["Enabled"] for d in displays)
    assert name in launch_ast.strings(LAUNCH / "host_decode.launch.py")


def test_docs_cover_parameters_and_rejection_causes() -> None:
    docs = DOCS.read_text()
    assert "colcon build --base-paths" in docs and "imgcomp_msgs" in docs
    for spec in ENCODER_PARAMS + DECODER_PARAMS + MULTITASK_PARAMS:
        assert f"| `{spec.name}` |" in docs, spec.name
    causes = [value for key, value in vars(rejections).items() if key.isupper() and isinstance(value, str)]
    assert len(causes) == 11
    for cause in causes:
        assert f"`{cause}`" in docs, cause
    for name in LAUNCH_FILES:
        assert f"{name}.launch.py" in docs
