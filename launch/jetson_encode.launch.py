"""Robot side: the imgcomp encoder on one camera topic.

    ros2 launch imgcomp jetson_encode.launch.py camera_topic:=/camera/image_raw device:=cuda

Publishes `<camera_topic>/imgcomp` (imgcomp_msgs/CompressedFeatures). `model`, `quality`,
`keyframe_interval` and `device` override the parameter file when given; left empty, the file's
values apply.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from imgcomp.launch_args import check_device, check_keyframe_interval, check_model, check_quality


def _encoder(context):
    camera_topic = LaunchConfiguration("camera_topic").perform(context).rstrip("/")
    overrides = {}
    model = LaunchConfiguration("model").perform(context)
    if model:
        overrides["model"] = check_model(model)
    device = LaunchConfiguration("device").perform(context)
    if device:
        overrides["device"] = check_device(device)
    quality = LaunchConfiguration("quality").perform(context)
    if quality:
        overrides["quality"] = check_quality(quality, model or None)
    keyframe_interval = LaunchConfiguration("keyframe_interval").perform(context)
    if keyframe_interval:
        overrides["keyframe_interval"] = check_keyframe_interval(keyframe_interval)
    parameters = [LaunchConfiguration("params_file").perform(context)]
    if overrides:
        parameters.append(overrides)
    return [
        Node(
            package="imgcomp",
            executable="encoder_node",
            # After Ctrl-C, unloading torch alone takes seconds on a busy CPU: more than the
            # default 5 s before launch escalates to SIGTERM.
            sigterm_timeout="15",
            name="imgcomp_encoder",
            output="screen",
            parameters=parameters,
            remappings=[
                ("camera/image_raw", camera_topic),
                ("camera/image_raw/imgcomp", camera_topic + "/imgcomp"),
            ],
        )
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "camera_topic",
                default_value="/camera/image_raw",
                description="sensor_msgs/Image topic to compress; the features go to <camera_topic>/imgcomp",
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="shipped model name (imgcomp/weights/manifest.json); empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "quality",
                default_value="",
                description="quality level 1 (fewest bits) .. the model's levels; empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "keyframe_interval",
                default_value="",
                description="temporal mode: a key frame every N frames, P-frames in between (0: key frames only); "
                "empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="cuda",
                description="cpu or cuda (falls back to cpu, logged, without a GPU); empty: the params_file value",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("imgcomp"), "config", "encoder.yaml"]),
                description="encoder parameter file (/**: ros__parameters: form)",
            ),
            OpaqueFunction(function=_encoder),
        ]
    )
