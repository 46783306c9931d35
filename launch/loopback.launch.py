"""Encoder and decoder on one machine: camera -> features -> decoded image, for trying the
codec, tuning quality or bitrate, and the launch tests.

    ros2 launch imgcomp loopback.launch.py camera_topic:=/camera/image_raw rviz:=true [multitask:=true]

Topics: `<camera_topic>` -> `<camera_topic>/imgcomp` -> `output_topic`.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

HERE = Path(__file__).resolve().parent


def generate_launch_description():
    camera_topic = LaunchConfiguration("camera_topic")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "camera_topic",
                default_value="/camera/image_raw",
                description="sensor_msgs/Image topic to compress; the features go to <camera_topic>/imgcomp",
            ),
            DeclareLaunchArgument(
                "output_topic",
                default_value="/camera/image_decoded",
                description="sensor_msgs/Image topic the decoded frames are published on",
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="shipped model name for the encoder (the decoder follows the payload); "
                "empty: the parameter files' value",
            ),
            DeclareLaunchArgument(
                "quality",
                default_value="",
                description="quality level 1 (fewest bits) .. the model's levels; empty: config/encoder.yaml",
            ),
            DeclareLaunchArgument(
                "keyframe_interval",
                default_value="",
                description="temporal mode: a key frame every N frames, P-frames in between (0: key frames only); "
                "empty: config/encoder.yaml",
            ),
            DeclareLaunchArgument(
                "device",
                default_value="cpu",
                description="cpu or cuda for both nodes (cuda falls back to cpu, logged, without a GPU)",
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                description="true: start rviz2 with raw and decoded images side by side",
            ),
            DeclareLaunchArgument(
                "multitask",
                default_value="false",
                description="true: also run the multi-task node (depth, segmentation, normals under /camera)",
            ),
            # Each include in its own scope: jetson_encode's params_file (encoder.yaml) must not
            # become host_decode's params_file.
            GroupAction(scoped=True, actions=[IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(HERE / "jetson_encode.launch.py")),
                launch_arguments={
                    "camera_topic": camera_topic,
                    "model": LaunchConfiguration("model"),
                    "quality": LaunchConfiguration("quality"),
                    "keyframe_interval": LaunchConfiguration("keyframe_interval"),
                    "device": LaunchConfiguration("device"),
                }.items(),
            )]),
            GroupAction(scoped=True, actions=[IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(HERE / "host_decode.launch.py")),
                launch_arguments={
                    "features_topic": [camera_topic, "/imgcomp"],
                    "output_topic": LaunchConfiguration("output_topic"),
                    "model": LaunchConfiguration("model"),
                    "device": LaunchConfiguration("device"),
                    "rviz": LaunchConfiguration("rviz"),
                    "multitask": LaunchConfiguration("multitask"),
                }.items(),
            )]),
        ]
    )
