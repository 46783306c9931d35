"""ROS-side code shared by the node packages `imgcomp_encoder` and `imgcomp_decoder`:
`rosutil` (parameters from specs, QoS, diagnostics, spinning) and `node_base` (the node base).
Imports rclpy; the core library `imgcomp` never imports this package."""
