"""Record the compressed stream into a small MCAP bag.

    ros2 launch imgcomp record.launch.py out:=run1
    ros2 launch imgcomp record.launch.py topics:="/camera/image_raw/imgcomp /camera/camera_info /tf"

Runs `ros2 bag record -s <storage> -o <out> <topics...>`. Replay with `ros2 bag play <out>`
and run the decoder (host_decode.launch.py) to get the images back.
"""

import importlib.util
import shutil
import time

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration


def _record(context):
    # Without rosbag2 `ros2 bag` is an unknown verb and the launch would still exit 0.
    if shutil.which("ros2") is None or importlib.util.find_spec("ros2bag") is None:
        raise RuntimeError("`ros2 bag` is not installed (the ros2bag package is missing): install rosbag2, "
                           "e.g. apt install ros-$ROS_DISTRO-rosbag2 ros-$ROS_DISTRO-rosbag2-storage-mcap")
    out = LaunchConfiguration("out").perform(context) or time.strftime("imgcomp_%Y%m%d_%H%M%S")
    topics = LaunchConfiguration("topics").perform(context).split()
    if not topics:
        raise ValueError("topics must name at least one topic")
    storage = LaunchConfiguration("storage").perform(context)
    extra = LaunchConfiguration("extra_args").perform(context).split()
    return [
        ExecuteProcess(
            cmd=["ros2", "bag", "record", "-s", storage, "-o", out, *extra, *topics],
            output="screen",
        )
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "out",
                default_value="",
                description="output bag folder (must not exist); empty: imgcomp_<date>_<time> in the current folder",
            ),
            DeclareLaunchArgument(
                "topics",
                default_value="/camera/image_raw/imgcomp",
                description="space-separated topics to record",
            ),
            DeclareLaunchArgument(
                "storage",
                default_value="mcap",
                description="rosbag2 storage plugin (mcap, or sqlite3)",
            ),
            DeclareLaunchArgument(
                "extra_args",
                default_value="",
                description="more `ros2 bag record` options, space-separated (e.g. --max-bag-duration 600)",
            ),
            OpaqueFunction(function=_record),
        ]
    )
