"""Errors shared by the inference backends (a leaf module, so backends never import transforms.py)."""

from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine (a missing package, GPU or CPU feature); the message says why."""
