"""rosbag2 reading and writing through `rosbags` (MCAP or SQLite3), no ROS installation needed.

Besides the plain helpers (`open_writer`, `read_messages`), three pieces serve the bag tools:

* `BagWriter.copy_raw` copies a message of any type, known to our typestore or not, with the
  source connection's message definition, type hash, QoS profiles and serialization format
  (`connection_definition` says where each comes from);
* `open_reader` checks a bag before it is read (missing, empty, no metadata, truncated, an
  MCAP chunk failing its CRC: `check_bag`) and turns whatever rosbags raises on a damaged bag,
  opening or mid-stream, into a one-line `BagError`;
* `imgcomp.rosbag.output.open_output` (its own module) writes a bag so that no kill loses data.

Every MCAP bag written here gets chunk and summary CRCs (`imgcomp.rosbag.mcap_integrity`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from imgcomp.rosbag.mcap_integrity import McapDamage
from imgcomp.rosbag.mcap_integrity import add_crcs as add_mcap_crcs
from imgcomp.rosbag.mcap_integrity import verify as verify_mcap
from imgcomp.rosbag.messages import typestore

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


def check_storage(storage: str) -> None:
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")


@contextmanager
def open_writer(path: Path, storage: str = "mcap") -> Iterator[BagWriter]:
    """A rosbags writer; an MCAP bag gets its chunk and summary CRCs once closed (rosbags
    writes none), so that damage to it can be detected later."""
    check_storage(storage)
    with Writer(path, version=ROSBAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        yield BagWriter(writer)
    add_crcs(Path(path))


# ------------------------------------------------------------- outputs of unfinished runs
PARTIAL_SUFFIX = ".partial"
MARKER = ".imgcomp-partial.json"  # inside `<OUT>.partial`: which run made it, and what it moved


def partial_path(path: Path) -> Path:
    """The sibling folder `open_output` writes into: `<path>.partial`."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def marker_owner(marker: dict[str, Any]) -> str:
    return f"pid {marker.get('pid')} on {marker.get('host')}, started {marker.get('started')}"


def read_marker(partial: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((partial / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "imgcomp" else None


def interrupted_hint(partial: Path) -> str:
    marker = read_marker(partial) if partial.is_dir() else None
    if marker is None:
        return ""
    return (
        f" ({partial} holds the output of an interrupted imgcomp run, {marker_owner(marker)}: "
        "rerun the command to finish it)"
    )


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
        raise FileNotFoundError(f"{what} {path} does not exist{interrupted_hint(partial_path(path))}")
    if not path.is_dir():
        if not path.is_file() or path.suffix not in (".mcap", ".db3"):
            raise BagError(f"{what} {path} is neither a rosbag2 folder nor an .mcap or .db3 file")
        return
    if not any(path.iterdir()):
        raise BagError(f"{what} {path} is an empty folder, not a rosbag2 bag")
    if (path / "metadata.yaml").exists():
        return
    marker = read_marker(path.parent) if path.parent.name.endswith(PARTIAL_SUFFIX) else None
    if marker is not None:
        raise BagError(
            f"{what} {path} is the unfinished output of an interrupted imgcomp run ({marker_owner(marker)}), not a bag"
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
    start_time = property(lambda self: self._reader.start_time)  # bag time (ns) of the first message

    def messages(
        self, connections: list[Connection] | None = None, start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[Connection, int, Any]]:
        """(connection, bag time, raw CDR) in bag-time order, optionally only bag times in
        [start, stop) (ns); `connections=[]` yields nothing (rosbags itself reads every
        connection when given none)."""
        if connections is not None and not connections:
            return
        count = 0
        try:
            for item in self._reader.messages(connections=connections or (), start=start, stop=stop):
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


def add_crcs(bag: Path) -> None:
    """Chunk and summary CRCs into every MCAP file of a bag folder (rosbags writes none)."""
    for mcap in bag.glob("*.mcap"):
        add_mcap_crcs(mcap)


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
