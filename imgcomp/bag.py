"""rosbag2 reading and writing through `rosbags` (MCAP or SQLite3), no ROS installation needed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from imgcomp.rosmsg import typestore

ROSBAG_VERSION = 9
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes

    def decode(self) -> Any:
        return typestore().deserialize_cdr(self.raw, self.msgtype)


class BagWriter:
    """Writes serialized messages; one connection per topic, created on first use."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._connections: dict[str, Any] = {}

    def write(self, topic: str, msgtype: str, timestamp_ns: int, message: Any) -> int:
        """Serialize `message` to CDR, write it, return its size in bytes."""
        raw = typestore().serialize_cdr(message, msgtype)
        self.write_raw(topic, msgtype, timestamp_ns, raw)
        return len(raw)

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, raw: bytes | memoryview) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise ValueError(f"topic {topic} already carries {connection.msgtype}, not {msgtype}")
        self._writer.write(connection, timestamp_ns, raw)


@contextmanager
def open_writer(path: Path, storage: str = "mcap") -> Iterator[BagWriter]:
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    with Writer(path, version=ROSBAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
        yield BagWriter(writer)


def read_messages(path: Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages in timestamp order, optionally only those of `topics`."""
    with Reader(path) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(raw))


def bag_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
