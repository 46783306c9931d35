"""Host side: the imgcomp decoder, optionally the multi-task node and rviz2.

    ros2 launch imgcomp host_decode.launch.py rviz:=true multitask:=true

Decodes `features_topic` (imgcomp_msgs/CompressedFeatures) to `output_topic`
(sensor_msgs/Image, the source's size, encoding, stamp and frame_id). With multitask:=true the
multi-task node also reads `features_topic` and publishes depth, segmentation and normals under
`perception_ns` (depth, segmentation, segmentation/color, normals, normals/color) without
decoding the image.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from imgcomp.launch_args import check_device, check_model


def _decoder(context):
    features_topic = LaunchConfiguration("features_topic").perform(context)
    overrides = {}
    for name, check in (("model", check_model), ("device", check_device)):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = check(value)
    parameters = [LaunchConfiguration("params_file").perform(context)]
    if overrides:
        parameters.append(overrides)
    return [
        Node(
            package="imgcomp",
            executable="decoder_node",
            # After Ctrl-C, unloading torch alone takes seconds on a busy CPU: more than the
            # default 5 s before launch escalates to SIGTERM.
            sigterm_timeout="15",
            name="imgcomp_decoder",
            output="screen",
            parameters=parameters,
            remappings=[
                ("camera/image_raw/imgcomp", features_topic),
                ("camera/image_decoded", LaunchConfiguration("output_topic").perform(context)),
            ],
        ),
    ]


def _multitask(context):
    ns = LaunchConfiguration("perception_ns").perform(context).rstrip("/")
    parameters = [LaunchConfiguration("multitask_params_file").perform(context)]
    device = LaunchConfiguration("device").perform(context)
    if device:
        parameters.append({"device": device})
    return [
        Node(
            package="imgcomp",
            executable="multitask_node",
            sigterm_timeout="15",
            name="imgcomp_multitask",
            output="screen",
            parameters=parameters,
            remappings=[
                ("camera/image_raw/imgcomp", LaunchConfiguration("features_topic").perform(context)),
                ("camera/depth", f"{ns}/depth"),
                ("camera/segmentation", f"{ns}/segmentation"),
                ("camera/segmentation/color", f"{ns}/segmentation/color"),
                ("camera/normals", f"{ns}/normals"),
                ("camera/normals/color", f"{ns}/normals/color"),
            ],
            condition=IfCondition(LaunchConfiguration("multitask")),
        ),
    ]


def _rviz_config(name: str):
    """config/<name> from a checkout beside this file, else from the installed share folder."""
    local = Path(__file__).resolve().parent.parent / "config" / name
    return str(local) if local.is_file() else PathJoinSubstitution([FindPackageShare("imgcomp"), "config", name])


def _rviz(context):
    """rviz2 with the raw and decoded images, or with decoded, depth, segmentation and normals
    when the multi-task node runs too."""
    multitask = LaunchConfiguration("multitask").perform(context).lower() in ("true", "1", "yes")
    config = _rviz_config("imgcomp_perception.rviz" if multitask else "imgcomp.rviz")
    return [
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", config],
            condition=IfCondition(LaunchConfiguration("rviz")),
        )
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "features_topic",
                default_value="/camera/image_raw/imgcomp",
                description="imgcomp_msgs/CompressedFeatures topic to decode",
            ),
            DeclareLaunchArgument(
                "output_topic",
                default_value="/camera/image_decoded",
                description="sensor_msgs/Image topic the decoded frames are published on",
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="model loaded at start (others load on first use); empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="",
                description="cpu or cuda (falls back to cpu, logged, without a GPU); empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("imgcomp"), "config", "decoder.yaml"]),
                description="decoder parameter file (/**: ros__parameters: form)",
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                description="true: start rviz2 with config/imgcomp.rviz (raw and decoded images), or with "
                "imgcomp_perception.rviz (decoded, depth, segmentation, normals) when multitask:=true",
            ),
            DeclareLaunchArgument(
                "multitask",
                default_value="false",
                description="true: also start the multi-task node (depth, segmentation, normals from the features)",
            ),
            DeclareLaunchArgument(
                "perception_ns",
                default_value="/camera",
                description="the multi-task node publishes <perception_ns>/depth, /segmentation, /normals (+ /color views)",
            ),
            DeclareLaunchArgument(
                "multitask_params_file",
                default_value=PathJoinSubstitution([FindPackageShare("imgcomp"), "config", "multitask.yaml"]),
                description="multi-task node parameter file (/**: ros__parameters: form)",
            ),
            OpaqueFunction(function=_decoder),
            OpaqueFunction(function=_multitask),
            OpaqueFunction(function=_rviz),
        ]
    )
