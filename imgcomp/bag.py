"""rosbag2 reading and writing through `rosbags` (MCAP or SQLite3), no ROS installation needed.

Besides the plain helpers (`open_writer`, `read_messages`), three pieces serve the bag tools:

* `BagWriter.copy_raw` copies a message of any type, known to our typestore or not, with the
  source connection's message definition, type hash, QoS profiles and serialization format
  (`connection_definition` says where each comes from);
* `open_reader` checks a bag before it is read (missing, empty, no metadata, truncated, an
  MCAP chunk failing its CRC: `check_bag`) and turns whatever rosbags raises on a damaged bag,
  opening or mid-stream, into a one-line `BagError`;
* `open_output` writes a bag so that no kill loses data: written as `<OUT>.partial/<name>/`
  beside a marker naming the run, moved to `OUT` only once complete (atomically swapped with
  an old `OUT` under `overwrite`), and recognised by the next run (`recover_output`), which
  finishes or cleans up what a killed run left. It never deletes what it did not write,
  except the old bag that `overwrite` replaces.

Every MCAP bag written here gets chunk and summary CRCs (`imgcomp.mcap_integrity`).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from imgcomp.mcap_integrity import McapDamage
from imgcomp.mcap_integrity import add_crcs as add_mcap_crcs
from imgcomp.mcap_integrity import verify as verify_mcap
from imgcomp.rosmsg import typestore

_log = logging.getLogger(__name__)

# rosbags writes metadata version 8 or 9. Version 9 stores `offered_qos_profiles` as a YAML list,
# which Humble's rosbag2 (metadata version 5, reads it as a string) rejects ("yaml-cpp: bad
# conversion"); version 8 keeps the string form that Humble, Iron and Jazzy all read.
ROSBAG_VERSION = 8
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes

    def decode(self) -> Any:
        return typestore().deserialize_cdr(self.raw, self.msgtype)


# Written as the type hash of a copied type whose definition neither the source bag nor our
# typestore knows (a custom type in a pre-Iron SQLite3 bag): rosbags needs a non-empty hash.
UNKNOWN_RIHS01 = "RIHS01_" + "0" * 64


@functools.lru_cache(maxsize=64)
def _hash_from_definition(msgtype: str, fmt: MessageDefinitionFormat, text: str) -> str | None:
    """RIHS01 hash of `msgtype` parsed from a bag's full (dependencies included) definition."""
    try:
        store = get_typestore(Stores.EMPTY)
        if fmt == MessageDefinitionFormat.MSG:
            store.register(get_types_from_msg(text, msgtype))
        else:  # IDL: one document, or several each headed by "IDL: <name>" (as rosbags reads them)
            sep = "=" * 80 + "\n"
            parts = [p.split("\n", 1)[1] for p in text.split(sep)[1:]] if text.startswith(sep + "IDL: ") else [text]
            types: dict[str, Any] = {}
            for part in parts:
                types.update(get_types_from_idl(part))
            store.register(types)
        return store.hash_rihs01(msgtype)
    except Exception:  # noqa: BLE001 - a definition rosbags cannot parse: no hash, not a crash
        return None


def connection_definition(connection: Connection) -> tuple[str, str]:
    """`(msgdef, rihs01)` to give a copy of `connection` in a new bag.

    In order of preference: the source connection's own definition and hash; a hash computed
    from its definition (Humble's MCAP bags carry definitions but no hashes); our typestore's
    definition and hash (pre-Iron SQLite3 bags carry neither); as a last resort an empty
    definition and `UNKNOWN_RIHS01`, with a warning.
    """
    msgtype = connection.msgtype
    fmt, text = connection.msgdef.format, connection.msgdef.data
    has_def = fmt != MessageDefinitionFormat.NONE and bool(text)
    digest = connection.digest or None
    if has_def and digest is None:
        digest = _hash_from_definition(msgtype, fmt, text)
    store = typestore()
    if msgtype in store.types:
        if not has_def:
            text, _ = store.generate_msgdef(msgtype, ros_version=2)
            has_def = True
        if digest is None:
            digest = store.hash_rihs01(msgtype)
    if digest is None:
        _log.warning(
            "no definition or type hash known for %s (topic %s); copied with %s",
            msgtype, connection.topic, "its definition" if has_def else "an empty definition",
        )
        digest = UNKNOWN_RIHS01
    return (text if has_def else ""), digest


class BagWriter:
    """Writes serialized messages; one connection per topic, created on first use.

    `copy_raw` instead keeps one connection per source connection (topic, type, QoS), as the
    source bag had them.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._connections: dict[str, Any] = {}
        self._copies: dict[tuple[str, str, Any], Any] = {}

    @property
    def path(self) -> Path:
        return Path(self._writer.path)

    def write(self, topic: str, msgtype: str, timestamp_ns: int, message: Any) -> int:
        """Serialize `message` to CDR, write it, return its size in bytes."""
        raw = typestore().serialize_cdr(message, msgtype)
        self.write_raw(topic, msgtype, timestamp_ns, raw)
        return len(raw)

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        timestamp_ns: int,
        raw: bytes | memoryview,
        *,
        like: Connection | None = None,
    ) -> None:
        """Write CDR bytes of a type our typestore knows; `like` lends QoS profiles and
        serialization format from a source connection (only used when the topic is new)."""
        connection = self._connections.get(topic)
        if connection is None:
            kwargs: dict[str, Any] = {}
            if like is not None and isinstance(like.ext, ConnectionExtRosbag2):
                kwargs = {
                    "serialization_format": like.ext.serialization_format,
                    "offered_qos_profiles": like.ext.offered_qos_profiles,
                }
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore(), **kwargs)
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise ValueError(f"topic {topic} already carries {connection.msgtype}, not {msgtype}")
        self._writer.write(connection, timestamp_ns, raw)

    def copy_raw(self, source: Connection, timestamp_ns: int, raw: bytes | memoryview) -> None:
        """Write a message of `source` (a reader's connection) unchanged: same topic, type,
        definition, type hash, QoS profiles and serialization format."""
        ext = source.ext if isinstance(source.ext, ConnectionExtRosbag2) else ConnectionExtRosbag2("cdr", [])
        key = (source.topic, source.msgtype, repr(ext))
        connection = self._copies.get(key)
        if connection is None:
            if source.topic in self._connections:
                raise ValueError(f"topic {source.topic} is already written by this writer")
            msgdef, rihs01 = connection_definition(source)
            connection = self._writer.add_connection(
                source.topic,
                source.msgtype,
                msgdef=msgdef,
                rihs01=rihs01,
                serialization_format=ext.serialization_format,
                offered_qos_profiles=ext.offered_qos_profiles,
            )
            self._copies[key] = connection
        self._writer.write(connection, timestamp_ns, raw)


def _check_storage(storage: str) -> None:
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")


@contextmanager
def open_writer(path: Path, storage: str = "mcap") -> Iterator[BagWriter]:
    """A rosbags writer; an MCAP bag gets its chunk and summary CRCs once closed (rosbags
    writes none), so that damage to it can be detected later."""
    _check_storage(storage)
    with Writer(path, version=ROSBAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        yield BagWriter(writer)
    _add_crcs(Path(path))


# ------------------------------------------------------------------------------ reading safely
class BagError(ValueError):
    """A bag that cannot be read, or an output that cannot be written as asked; one line."""


@dataclass(frozen=True)
class BagCheck:
    """What `open_reader` verified before reading: MCAP chunks, and those without a CRC
    (written by rosbags or by a recorder with CRCs off), in which damage cannot be seen."""

    storage: str | None
    chunks: int = 0
    unverified_chunks: int = 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return text if isinstance(exc, (ReaderError, BagError, McapDamage)) and text else f"{type(exc).__name__}: {text}"


def _storage_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


def _check_readable(path: Path, what: str) -> None:
    """The one-line reason why `path` is not a bag rosbags can open, if it visibly is not."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist{_interrupted_hint(partial_path(path))}")
    if not path.is_dir():
        if not path.is_file() or path.suffix not in (".mcap", ".db3"):
            raise BagError(f"{what} {path} is neither a rosbag2 folder nor an .mcap or .db3 file")
        return
    if not any(path.iterdir()):
        raise BagError(f"{what} {path} is an empty folder, not a rosbag2 bag")
    if (path / "metadata.yaml").exists():
        return
    marker = _read_marker(path.parent) if path.parent.name.endswith(PARTIAL_SUFFIX) else None
    if marker is not None:
        raise BagError(
            f"{what} {path} is the unfinished output of an interrupted imgcomp run ({_who(marker)}), not a bag"
        )
    if _storage_files(path):
        raise BagError(
            f"{what} {path} has no metadata.yaml: a recording or conversion that never finished? "
            "(ros2 bag reindex can rebuild it)"
        )
    raise BagError(f"{what} {path} is not a rosbag2 bag (no metadata.yaml)")


def check_bag(path: Path, what: str = "bag") -> BagCheck:
    """Raise a one-line `BagError` (or FileNotFoundError) for a path that is no readable bag:
    missing, empty, without metadata, truncated or with a damaged MCAP chunk (every chunk
    with a CRC is checked, so this reads the whole of an MCAP bag once)."""
    path = Path(path)
    _check_readable(path, what)
    files = _storage_files(path)
    mcaps = [f for f in files if f.suffix == ".mcap"]
    chunks = unverified = 0
    for mcap in mcaps:
        try:
            check = verify_mcap(mcap)
        except McapDamage as exc:
            name = mcap.name if mcap != path else "it"
            raise BagError(f"{what} {path} cannot be used: {name} is {exc}") from None
        except OSError as exc:
            raise BagError(f"{what} {path} cannot be read: {_one_line(exc)}") from None
        chunks, unverified = chunks + check.chunks, unverified + check.without_crc
    storage = "mcap" if mcaps else "sqlite3" if files else None
    return BagCheck(storage, chunks, unverified)


class BagReader:
    """A rosbags `Reader` whose failures, opening or mid-stream, are one-line `BagError`s that
    name the bag; `check` is what `check_bag` found."""

    def __init__(self, path: Path, reader: Reader, check: BagCheck, what: str) -> None:
        self.path, self.check, self._reader, self._what = path, check, reader, what

    connections = property(lambda self: self._reader.connections)
    topics = property(lambda self: self._reader.topics)
    message_count = property(lambda self: self._reader.message_count)
    duration = property(lambda self: self._reader.duration)

    def messages(self, connections: list[Connection] | None = None) -> Iterator[tuple[Connection, int, Any]]:
        """(connection, bag time, raw CDR) in bag-time order; `connections=[]` yields nothing
        (rosbags itself reads every connection when given none)."""
        if connections is not None and not connections:
            return
        count = 0
        try:
            for item in self._reader.messages(connections=connections or ()):
                yield item
                count += 1
        except Exception as exc:  # noqa: BLE001 - whatever a damaged bag makes rosbags raise
            raise BagError(f"{self._what} {self.path} is damaged after {count} messages: {_one_line(exc)}") from None


@contextmanager
def open_reader(path: Path, what: str = "bag") -> Iterator[BagReader]:
    """`check_bag`, then a `BagReader` on the bag."""
    path = Path(path)
    check = check_bag(path, what)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises ReaderError, OSError, YAML and sqlite3 errors
        raise BagError(f"cannot read {what} {path}: {_one_line(exc)}") from None
    try:
        yield BagReader(path, reader, check, what)
    finally:
        reader.close()


# ---------------------------------------------------------------------- writing without loss
PARTIAL_SUFFIX = ".partial"
MARKER = ".imgcomp-partial.json"  # inside `<OUT>.partial`: which run made it, and what it moved
_REPLACED_SUFFIX = ".replaced"  # `<OUT>.partial/<name>.replaced`: the old OUT, where renameat2 cannot swap
_BAG_FILE_SUFFIXES = (".mcap", ".db3", ".db3-journal", ".db3-wal", ".db3-shm", ".zstd")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def partial_path(path: Path) -> Path:
    """The sibling folder `open_output` writes into: `<path>.partial`."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


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
            f"{partial} was made by imgcomp on {marker.get('host')} ({_who(marker)}), which this machine "
            "cannot check; if that run is over, remove it"
        )
    if _alive(marker.get("pid"), marker.get("pid_start")):
        return f"{partial} is being written by a running imgcomp ({_who(marker)}); wait for it, or stop it and rerun"
    return None


def _who(marker: dict[str, Any]) -> str:
    return f"pid {marker.get('pid')} on {marker.get('host')}, started {marker.get('started')}"


def _read_marker(partial: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((partial / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "imgcomp" else None


def _write_marker(partial: Path, marker: dict[str, Any]) -> None:
    tmp = partial / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n")
    os.replace(tmp, partial / MARKER)


def _interrupted_hint(partial: Path) -> str:
    marker = _read_marker(partial) if partial.is_dir() else None
    if marker is None:
        return ""
    return (
        f" ({partial} holds the output of an interrupted imgcomp run, {_who(marker)}: "
        "rerun the command to finish it)"
    )


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
                f"{partial} is not as the interrupted run ({_who(marker)}) left it; "
                "move what you need out of it and remove it"
            )
        if path.exists() or path.is_symlink():
            if old is None or _file_id(path) != old:
                raise BagError(
                    f"{inner} is a complete bag from an interrupted run ({_who(marker)}) but {path} is not the bag it "
                    f"was to replace: move {inner} where you want it and remove {partial}"
                )
            _swap(inner, path)
        else:
            _place(inner, path)
    replaced = _remove_old(partial, name, old)
    return f"{path} now holds the complete bag of an interrupted run ({_who(marker)})" + (
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
    marker = _read_marker(partial)
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
        return f"removed the incomplete bag of an interrupted run ({_who(marker)}) from {partial}"
    if _file_id(inner) == marker["new"]:
        _add_crcs(inner)  # the kill may have come before the CRCs were written
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


def _add_crcs(bag: Path) -> None:
    for mcap in bag.glob("*.mcap"):
        add_mcap_crcs(mcap)


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
    _check_storage(storage)
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


def read_messages(path: Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages in timestamp order, optionally only those of `topics`."""
    with Reader(path) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        if not connections:  # rosbags reads every connection when given none
            return
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))


def bag_size_bytes(path: Path) -> int:
    """Bytes on disk of a bag folder, or of a bare .mcap / .db3 file."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
