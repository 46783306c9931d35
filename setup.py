"""imgcomp: a ROS 2 ament_python package that is also a plain pip package.

``colcon build --base-paths <repo> <repo>/imgcomp_msgs`` builds it beside its interface
package; ``pip install <repo>`` installs the core library and the ``imgcomp`` command
without ROS (the nodes then fail at ``import rclpy`` only), ``pip install <repo>[host]`` also
the host's training, evaluation and plotting requirements.
"""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "imgcomp"
# colcon's --symlink-install runs this file through a symlink in its build folder, where
# only the files named below are linked: resolve it so the globs always see the checkout.
HERE = os.path.dirname(os.path.realpath(__file__))


def _files(pattern):
    """Files matching ``pattern`` in the checkout, relative to it (none is fine)."""
    return sorted(
        os.path.relpath(path, HERE)
        for path in glob(os.path.join(HERE, pattern))
        if os.path.isfile(path)
    )


def _requirements(name):
    """The requirement lines of one requirements file in the checkout (none if it has no such file);
    options and ``-r`` includes are skipped."""
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        lines = (line.split(" #", 1)[0].strip() for line in handle)
        return [line for line in lines if line and not line.startswith(("#", "-"))]


def _data_files():
    entries = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml") + _files("config/*.rviz")),
        (f"share/{PACKAGE}/config/models", _files("config/models/*.yaml")),
        (f"share/{PACKAGE}/config/multitask", _files("config/multitask/*.yaml")),
    ]
    return [(target, files) for target, files in entries if files]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Learned image compression for ROS 2 camera pipelines",
    packages=find_packages(
        where=HERE,
        include=[
            "imgcomp",
            "imgcomp.*",
            "imgcomp_encoder",
            "imgcomp_encoder.*",
            "imgcomp_decoder",
            "imgcomp_decoder.*",
            "imgcomp_ros",
            "imgcomp_ros.*",
        ],
    ),
    package_data={
        "imgcomp": ["weights/*.pt", "weights/*.md", "weights/*.json", "weights/*.npz",
                    "weights/multitask/*.pt", "weights/multitask/*.md", "weights/multitask/*.json", "msg/*.msg"],
    },
    data_files=_data_files(),
    # What the nodes need, with torch as a range (a Jetson keeps NVIDIA's build); `pip install .[host]`
    # adds the host's pins: training, evaluation, plots, bag tools. colcon test runs pytest (not
    # unittest, which finds 0 tests) because pytest is a test dependency.
    install_requires=_requirements("requirements-robot.txt") + _requirements("requirements-compressai.txt"),
    extras_require={"host": _requirements("requirements.txt"), "test": ["pytest"]},
    python_requires=">=3.10",
    zip_safe=False,
    maintainer="imgcomp maintainers",
    maintainer_email="imgcomp@example.com",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "imgcomp = imgcomp.cli.main:main",
            "encoder_node = imgcomp_encoder.node:main",
            "decoder_node = imgcomp_decoder.node:main",
            "multitask_node = imgcomp_decoder.multitask_node:main",
        ],
    },
)
