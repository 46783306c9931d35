"""Real training/validation images and video frames from Debian packages."""
