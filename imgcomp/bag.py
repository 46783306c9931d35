"""rosbag2 reading and writing through `rosbags` (MCAP or SQLite3), no ROS installation needed.

Besides the plain helpers (`open_writer`, `read_messages`), two pieces serve the bag tools:

* `BagWriter.copy_raw` copies a message of any type, known to our typestore or not, with the
  source connection's message definition, type hash, QoS profiles and serialization format
  (`connection_definition` says where each comes from);
* `open_output` writes a bag so that a killed process never leaves a half-written bag under
  the final name: the bag is written as `<OUT>.partial/<name>/` and moved to `OUT` only after
  rosbags has closed it (index and metadata.yaml written).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

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
# Files rosbags (or an interrupted sqlite3) leaves in a bag folder; see `open_output`.
_BAG_FILE_SUFFIXES = (".mcap", ".db3", ".db3-journal", ".db3-wal", ".db3-shm", ".yaml")


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
    _check_storage(storage)
    with Writer(path, version=ROSBAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        yield BagWriter(writer)


def partial_path(path: Path) -> Path:
    """The sibling folder `open_output` writes into: `<path>.partial`."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _is_stale_partial(folder: Path, name: str) -> bool:
    """True if `folder` holds nothing but (part of) a bag named `name`: safe to delete."""
    entries = list(folder.iterdir())
    if len(entries) > 1 or (entries and (entries[0].name != name or not entries[0].is_dir())):
        return False
    return all(
        p.is_file() and p.name.endswith(_BAG_FILE_SUFFIXES) for p in (entries[0].iterdir() if entries else [])
    )


@contextmanager
def open_output(path: Path, storage: str = "mcap", overwrite: bool = False) -> Iterator[BagWriter]:
    """Write a bag that appears at `path` only once complete.

    The bag is written to `<path>.partial/<name>/` (so its storage file already has its final
    name) and moved to `path` after the writer closed cleanly; `<path>.partial` is then
    removed. If the body raises, or the process dies, `path` is untouched and
    `<path>.partial` stays behind as evidence (a bag without metadata.yaml after an
    exception). A stale `.partial` from an earlier run is deleted first, but only if it holds
    nothing but bag files. An existing `path` raises `FileExistsError` unless `overwrite`,
    in which case it is replaced only after the new bag is complete.
    """
    _check_storage(storage)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    partial = partial_path(path)
    if partial.exists():
        if not partial.is_dir() or not _is_stale_partial(partial, path.name):
            raise FileExistsError(f"{partial} exists and is not a stale partial bag; remove it by hand")
        _log.warning("removing %s left by an interrupted earlier run", partial)
        shutil.rmtree(partial)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    inner = partial / path.name
    with open_writer(inner, storage) as writer:
        yield writer
    # Closed cleanly: metadata.yaml and the storage index are on disk.
    if path.exists():  # overwrite: move the old bag aside first, so `path` is never half-gone
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        os.replace(path, old)
        os.replace(inner, path)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.replace(inner, path)
    partial.rmdir()


def read_messages(path: Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages in timestamp order, optionally only those of `topics`."""
    with Reader(path) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        if not connections:  # rosbags reads every connection when given none
            return
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))


def bag_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
