"""Writing a bag without loss: `open_output` writes it as `<OUT>.partial/<name>/` beside a
marker naming the run, moves it to `OUT` only once complete (atomically swapped with an old
`OUT` under `overwrite`), and the next run recognises what a killed one left
(`recover_output`), finishing or cleaning it up. It never deletes what it did not write, except
the old bag that `overwrite` replaces. `check_output` refuses an output before any work.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


from imgcomp.rosbag.io import (
    MARKER,
    BagError,
    BagWriter,
    add_crcs,
    check_storage,
    marker_owner,
    open_writer,
    partial_path,
    read_marker,
)

__all__ = ["check_output", "open_output", "recover_output"]

_log = logging.getLogger(__name__)

# ---------------------------------------------------------------------- writing without loss
_REPLACED_SUFFIX = ".replaced"  # `<OUT>.partial/<name>.replaced`: the old OUT, where renameat2 cannot swap
_BAG_FILE_SUFFIXES = (".mcap", ".db3", ".db3-journal", ".db3-wal", ".db3-shm", ".zstd")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _kill_point(step: str) -> None:
    """Called at each step of putting a finished bag in place ("written", "marked", "aside",
    "placed"); the tests make it SIGKILL the process there."""


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux renameat2(2); False where the kernel, libc or file system does not support it."""
    libc = _libc()
    if libc is None:
        return False
    if libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags) == 0:  # -100: AT_FDCWD
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return libc


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where that is not supported."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def _place(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, never replacing whatever `dst` may be by then."""
    if not _renameat2(src, dst, _RENAME_NOREPLACE):
        if dst.exists() or dst.is_symlink():
            raise FileExistsError(f"{dst} appeared while the bag was being written; the new bag is kept in {src}")
        os.rename(src, dst)


def _file_id(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino]


def _process_start(pid: int) -> str | None:
    """Start time of a process (Linux: clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: Any, pid_start: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    start = _process_start(pid)
    return start is None or pid_start in (None, start)


def _still_owned(partial: Path, marker: dict[str, Any]) -> str | None:
    """Why the run that made `partial` may still be writing it; None if it is gone."""
    if marker.get("host") != socket.gethostname():
        return (
            f"{partial} was made by imgcomp on {marker.get('host')} ({marker_owner(marker)}), which this machine "
            "cannot check; if that run is over, remove it"
        )
    if _alive(marker.get("pid"), marker.get("pid_start")):
        return f"{partial} is being written by a running imgcomp ({marker_owner(marker)}); wait for it, or stop it and rerun"
    return None


def _write_marker(partial: Path, marker: dict[str, Any]) -> None:
    tmp = partial / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n")
    os.replace(tmp, partial / MARKER)


def _is_bag_folder(path: Path) -> bool:
    """A rosbag2 folder holding nothing but a bag's files: what `--overwrite` may replace."""
    if path.is_symlink() or not path.is_dir() or not (path / "metadata.yaml").is_file():
        return False
    return all(
        p.is_file() and not p.is_symlink() and (p.name.startswith("metadata.yaml") or p.name.endswith(_BAG_FILE_SUFFIXES))
        for p in path.iterdir()
    )


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an output that `open_output` would refuse, before any work is done."""
    path = Path(path)
    if path.suffix in (".mcap", ".db3"):
        raise BagError(
            f"output {path} names a storage file; give the bag folder to create (e.g. {path.with_suffix('')})"
        )
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if not _is_bag_folder(path):
        raise BagError(
            f"{path} exists and is not a rosbag2 bag (a folder of metadata.yaml and storage files); "
            "--overwrite only replaces bags"
        )


def _remove_old(partial: Path, name: str, old: list[int] | None) -> bool:
    """Delete the replaced bag, which the interrupted run's --overwrite asked to delete, from
    wherever in `partial` the swap left it; only a folder with the recorded identity."""
    removed = False
    for candidate in (partial / name, partial / (name + _REPLACED_SUFFIX)):
        if old is not None and _file_id(candidate) == old:
            shutil.rmtree(candidate)
            removed = True
    return removed


def _finish(partial: Path, path: Path, marker: dict[str, Any]) -> str:
    """Complete an interrupted run whose new bag was complete: put it at `path` (swapping with
    the old bag if the run was overwriting), delete the old one. Returns what was done."""
    name, new, old = path.name, marker.get("new"), marker.get("old")
    inner = partial / name
    if _file_id(path) != new:
        if _file_id(inner) != new:
            raise BagError(
                f"{partial} is not as the interrupted run ({marker_owner(marker)}) left it; "
                "move what you need out of it and remove it"
            )
        if path.exists() or path.is_symlink():
            if old is None or _file_id(path) != old:
                raise BagError(
                    f"{inner} is a complete bag from an interrupted run ({marker_owner(marker)}) but {path} is not the bag it "
                    f"was to replace: move {inner} where you want it and remove {partial}"
                )
            _swap(inner, path)
        else:
            _place(inner, path)
    replaced = _remove_old(partial, name, old)
    return f"{path} now holds the complete bag of an interrupted run ({marker_owner(marker)})" + (
        ", which replaced the old bag as its --overwrite asked" if replaced else ""
    )


def _remove_partial(partial: Path) -> None:
    """Delete a `.partial` of imgcomp's, the marker last: a kill on the way leaves it marked."""
    for entry in partial.iterdir():
        if entry.name != MARKER:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (partial / MARKER).unlink(missing_ok=True)
    partial.rmdir()


def _owned_entries(name: str) -> set[str]:
    return {MARKER, MARKER + ".tmp", name, name + _REPLACED_SUFFIX}


def recover_output(path: Path) -> str | None:
    """Deal with `<path>.partial` left by an earlier run, so that a new one can be written.

    Only a `.partial` with imgcomp's marker, whose run is gone, is touched: an incomplete bag
    (killed while writing) is deleted; a complete one is finished (moved to `path`, an old
    bag it was replacing deleted). Anything else raises a one-line `BagError`. Returns a line
    saying what was done (None if there was no `.partial`).
    """
    path = Path(path)
    partial = partial_path(path)
    if not (partial.exists() or partial.is_symlink()):
        return None
    if partial.is_symlink() or not partial.is_dir():
        raise BagError(f"{partial} exists and was not made by imgcomp; move or remove it")
    entries = {p.name for p in partial.iterdir()}
    marker = read_marker(partial)
    if marker is None:
        if entries - {MARKER + ".tmp"}:
            raise BagError(
                f"{partial} exists but has no imgcomp marker (made by hand or an older imgcomp?); move or remove it"
            )
        shutil.rmtree(partial)  # killed between creating it and writing the marker: nothing in it
        return None
    owned = _still_owned(partial, marker)
    if owned:
        raise BagError(owned)
    unknown = entries - _owned_entries(path.name)
    if unknown:
        raise BagError(
            f"{partial} holds files imgcomp did not write ({', '.join(sorted(unknown))}); move them out and rerun"
        )
    inner = partial / path.name
    if marker.get("new") is None and (inner / "metadata.yaml").is_file():
        marker = {**marker, "new": _file_id(inner)}  # killed after the writer closed, before the marker said so
    if marker.get("new") is None:
        _remove_partial(partial)
        return f"removed the incomplete bag of an interrupted run ({marker_owner(marker)}) from {partial}"
    if _file_id(inner) == marker["new"]:
        add_crcs(inner)  # the kill may have come before the CRCs were written
    done = _finish(partial, path, marker)
    leftover = {p.name for p in partial.iterdir()} - {MARKER, MARKER + ".tmp"}
    if leftover:
        raise BagError(f"{done}; {partial} still holds {', '.join(sorted(leftover))}: move or remove it")
    _remove_partial(partial)
    return done


def _swap(new: Path, path: Path) -> None:
    """Put `new` at `path` and the old `path` inside the `.partial` folder: atomically where
    renameat2 can exchange them, else in two renames with the old bag moved aside first."""
    if _exchange(new, path):
        return
    aside = new.with_name(new.name + _REPLACED_SUFFIX)
    os.rename(path, aside)
    _kill_point("aside")
    os.rename(new, path)


@contextmanager
def open_output(path: Path, storage: str = "mcap", overwrite: bool = False) -> Iterator[BagWriter]:
    """Write a bag that appears at `path` only once complete, losing nothing on the way.

    The bag is written to `<path>.partial/<name>/`, next to a marker file naming this run
    (pid, host, start time). Once the writer closed cleanly (index and metadata.yaml on disk)
    and its MCAP CRCs are written, it is moved to `path`: with `overwrite`, swapped with the
    old bag in one atomic renameat2 exchange (or, where the file system cannot, by moving the
    old bag into `.partial` first), and only then is the old bag deleted. `<path>.partial` is
    then removed.

    If the body raises, this run's `.partial` is deleted and `path` is untouched. If the
    process is killed, the next run sees the marker and recovers (`recover_output`): at every
    instant `path` holds the old bag or the new one, or (only without renameat2, between its
    two renames) both wait complete in `.partial` and the next run puts the new one in place.
    Nothing else is ever renamed or deleted: an existing `path` that is not a bag, and a
    `.partial` that imgcomp did not make, raise `BagError`; an existing `path` without
    `overwrite` raises `FileExistsError`.
    """
    check_storage(storage)
    path = Path(path)
    check_output(path, overwrite)
    recovered = recover_output(path)
    if recovered:
        _log.warning("%s", recovered)
    check_output(path, overwrite)
    partial = partial_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.mkdir()
    except FileExistsError:
        raise BagError(f"{partial} was just created by another run; wait for it and rerun") from None
    marker = {
        "tool": "imgcomp", "run": uuid.uuid4().hex, "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
        "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "output": str(path.absolute()),
        "new": None, "old": _file_id(path),  # old: the bag --overwrite replaces (checked by check_output)
    }
    _write_marker(partial, marker)
    inner = partial / path.name
    try:
        with open_writer(inner, storage) as writer:
            yield writer
    except BaseException:
        with suppress(OSError):  # the original error is the one to report
            _remove_partial(partial)  # this run's own, incomplete: nothing to keep
        raise
    # From here on nothing is deleted on an error: the bag in `.partial` is complete.
    _kill_point("written")
    if _file_id(path) != marker["old"]:
        raise BagError(f"{path} changed while the new bag was written; the new bag is kept in {inner}")
    _write_marker(partial, {**marker, "new": _file_id(inner)})
    _kill_point("marked")
    if marker["old"] is not None:
        _swap(inner, path)
    else:
        _place(inner, path)
    _kill_point("placed")
    _remove_old(partial, path.name, marker["old"])
    _remove_partial(partial)
