"""`imgcomp bag` loses no data when killed, and answers every bad bag with one line.

Kills are real: a small subprocess (rosbags only, no torch) SIGKILLs itself at a named step of
`imgcomp.rosbag.output.open_output` (its `_kill_point`) or inside rosbags' own close, and the test
checks what is on disk and what the next run makes of it. The bad bags are made here from a
small bag of 4 frames and walked through `python -m imgcomp bag ...` in subprocesses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from imgcomp.rosbag.io import MARKER, BagError, check_bag, open_reader, open_writer, partial_path, verify_mcap
from imgcomp.rosbag.output import open_output, recover_output
from imgcomp.rosbag import compress, info
from imgcomp.rosbag.mcap_integrity import McapDamage
from imgcomp.rosbag.messages import IMAGE_TYPE, MSG_TYPE, deserialize, make_features_msg, make_image_msg, typestore

REPO = Path(__file__).resolve().parent.parent
TOPIC = "/camera/image_raw"
STRING = "std_msgs/msg/String"
T0 = 1_700_000_000 * 10**9
PERIOD = 33_333_333


# ------------------------------------------------------------------------------------ helpers
def write_strings(path: Path, texts: list[str], storage: str = "mcap") -> None:
    string = typestore().types[STRING]
    with open_writer(path, storage) as writer:
        for i, text in enumerate(texts):
            writer.write("/chatter", STRING, T0 + i, string(data=text))


def texts_of(path: Path) -> list[str]:
    with Reader(path) as reader:
        return [deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()]


OLD, NEW = ["old 0", "old 1"], ["new 0", "new 1", "new 2"]

KILL_SCRIPT = textwrap.dedent("""
    import os, pathlib, signal, sys
    import imgcomp.rosbag.output as bag
    from imgcomp.rosbag.messages import typestore

    out, step, exchange, overwrite = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if step == "metadata.yaml.tmp":  # inside rosbags' close, before it renames the metadata into place
        replace = pathlib.Path.replace
        pathlib.Path.replace = lambda self, target: die() if self.name == step else replace(self, target)
    else:
        bag._kill_point = lambda at: die() if at == step else None
    if not exchange:  # a file system without renameat2's exchange
        bag._exchange = lambda a, b: False
    string = typestore().types["std_msgs/msg/String"]
    with bag.open_output(pathlib.Path(out), overwrite=overwrite) as writer:
        for i in range(3):
            writer.write("/chatter", "std_msgs/msg/String", 1000 + i, string(data=f"new {i}"))
            if step == "message" and i == 1:  # mid-stream
                die()
""")


def killed_run(out: Path, step: str, *, exchange: bool = True, overwrite: bool = True) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(out), step, str(int(exchange)), str(int(overwrite))],
        cwd=REPO, capture_output=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def image_bag(path: Path, real_images, frames: int = 4) -> None:
    """A small bag of `frames` 48x64 crops of a real photo, plus a String topic (with CRCs)."""
    rgb = real_images["baboon"]
    string = typestore().types[STRING]
    with open_writer(path) as writer:
        for i in range(frames):
            crop = np.ascontiguousarray(rgb[8 * i: 8 * i + 48, 16 * i: 16 * i + 64])
            writer.write(TOPIC, IMAGE_TYPE, T0 + i * PERIOD, make_image_msg(T0 + i, "cam", crop, "rgb8"))
            writer.write("/chatter", STRING, T0 + i * PERIOD + 5, string(data=f"hello {i}"))


# ------------------------------------------------------------------------- losing no data
def test_overwrite_leaves_a_users_out_old_folder_alone(tmp_path, real_images, factorized_codec):
    raw, out = tmp_path / "raw", tmp_path / "out"
    image_bag(raw, real_images, frames=2)
    compress(raw, out, codec=factorized_codec, quality=1, progress=False)
    mine = tmp_path / "out.old"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    summary = compress(raw, out, codec=factorized_codec, quality=2, overwrite=True, progress=False)
    assert summary.quality == 2 and info(out)["compressed"][TOPIC + "/imgcomp"]["qualities"] == {2: 2}
    assert (mine / "notes.txt").read_text() == "my notes"
    assert not partial_path(out).exists()


# (kill step, renameat2 exchange available, what OUT holds right after the kill, after the rerun)
KILLS = [
    ("metadata.yaml.tmp", True, OLD, OLD),  # the new bag never completed: removed, the old one stays
    ("written", True, OLD, NEW),  # complete but not yet in place: the rerun finishes the overwrite
    ("marked", True, OLD, NEW),
    ("placed", True, NEW, NEW),  # swapped; only the old bag's deletion was left
    ("marked", False, OLD, NEW),
    ("aside", False, None, NEW),  # between the two renames: both bags complete in OUT.partial
    ("placed", False, NEW, NEW),
]


@pytest.mark.parametrize(("step", "exchange", "right_after", "after_rerun"), KILLS,
                         ids=[f"{s}-{'exchange' if e else 'two-renames'}" for s, e, _, _ in KILLS])
def test_a_kill_at_any_step_of_an_overwrite_loses_nothing(tmp_path, step, exchange, right_after, after_rerun):
    out = tmp_path / "out"
    write_strings(out, OLD)
    mine = tmp_path / "out.old"  # a user's folder that happens to have the old backup's name
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")

    killed_run(out, step, exchange=exchange)

    partial = partial_path(out)
    assert (partial / MARKER).is_file()
    if right_after is None:  # OUT is missing for a moment, and says where its bags are
        assert not out.exists()
        assert texts_of(partial / "out") == NEW and texts_of(partial / "out.replaced") == OLD
        with pytest.raises(FileNotFoundError, match="interrupted imgcomp run.*rerun the command"):
            check_bag(out)
    else:
        assert texts_of(out) == right_after
    if step == "metadata.yaml.tmp":
        assert (partial / "out" / "metadata.yaml.tmp").exists() and not (partial / "out" / "metadata.yaml").exists()

    done = recover_output(out)
    assert "interrupted run" in done
    assert texts_of(out) == after_rerun
    assert not partial.exists()
    assert (mine / "notes.txt").read_text() == "my notes"
    assert verify_mcap(next(out.glob("*.mcap"))).without_crc == 0


def test_a_rerun_after_a_kill_while_rosbags_writes_its_metadata_succeeds(tmp_path, caplog):
    out = tmp_path / "out"
    killed_run(out, "metadata.yaml.tmp", overwrite=False)
    assert (partial_path(out) / "out" / "metadata.yaml.tmp").exists() and not out.exists()
    with open_output(out) as writer:  # used to refuse: "not a stale partial bag; remove it by hand"
        writer.write("/chatter", STRING, T0, typestore().types[STRING](data="again"))
    assert texts_of(out) == ["again"] and not partial_path(out).exists()
    assert "removed the incomplete bag of an interrupted run" in caplog.text


def test_a_rerun_after_a_kill_in_the_rename_window_keeps_the_complete_bag(tmp_path, caplog):
    """Killed between moving the old OUT aside and moving the new bag in: the next run puts
    the complete new bag in place (saying so) before it writes its own, instead of deleting it."""
    out = tmp_path / "out"
    write_strings(out, OLD)
    killed_run(out, "aside", exchange=False)
    with pytest.raises(FileExistsError, match="exists"), caplog.at_level("WARNING"):
        with open_output(out):  # no --overwrite: the recovered bag is not replaced
            pass
    assert "now holds the complete bag of an interrupted run" in caplog.text
    assert texts_of(out) == NEW and not partial_path(out).exists()


def test_overwrite_replaces_only_a_bag(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(BagError, match="not a rosbag2 bag.*only replaces bags"):
        with open_output(out, overwrite=True):
            pass
    write_strings(out / "inner", OLD)  # a folder holding a bag is not a bag either
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        with open_output(out, overwrite=True):
            pass
    assert (out / "thesis.tex").read_text() == "years of work" and not partial_path(out).exists()


def test_a_partial_of_a_running_or_foreign_run_is_left_alone(tmp_path):
    out = tmp_path / "out"
    partial = partial_path(out)
    partial.mkdir()
    (partial / MARKER).write_text(
        f'{{"tool": "imgcomp", "pid": {os.getpid()}, "host": "{socket.gethostname()}", "new": null, "old": null}}'
    )
    (partial / "out").mkdir()
    with pytest.raises(BagError, match="being written by a running imgcomp"):
        recover_output(out)
    (partial / MARKER).write_text('{"tool": "imgcomp", "pid": 999999999, "host": "elsewhere"}')
    with pytest.raises(BagError, match="made by imgcomp on elsewhere .*cannot check"):
        recover_output(out)
    assert (partial / "out").is_dir()


def test_an_error_while_writing_removes_only_the_runs_own_partial(tmp_path):
    out = tmp_path / "out"
    write_strings(out, OLD)
    with pytest.raises(RuntimeError, match="boom"):
        with open_output(out, overwrite=True):
            raise RuntimeError("boom")
    assert texts_of(out) == OLD and not partial_path(out).exists()


# ----------------------------------------------------------------------------- MCAP CRCs
def record_offset(data: bytes, opcode: int, start: int = 8) -> int:
    """Where the first record of `opcode` at or after `start` begins (MCAP spec layout)."""
    offset = start
    while data[offset] != opcode:
        offset += 9 + struct.unpack_from("<Q", data, offset + 1)[0]
    return offset


def chunk_data_offset(mcap: Path) -> int:
    """Where the first chunk's records start."""
    data = mcap.read_bytes()
    offset = record_offset(data, 0x06)
    (name_len,) = struct.unpack_from("<I", data, offset + 9 + 28)
    return offset + 9 + 32 + name_len + 8


def test_bags_we_write_carry_crcs_and_damage_is_named(tmp_path):
    bag = tmp_path / "bag"
    write_strings(bag, [f"message {i}" for i in range(50)])
    mcap = bag / "bag.mcap"
    assert verify_mcap(mcap).without_crc == 0
    assert texts_of(bag)[-1] == "message 49"  # rosbags checks chunk CRCs while reading: ours are right

    data = bytearray(mcap.read_bytes())
    data[chunk_data_offset(mcap) + 100] ^= 0x10
    mcap.write_bytes(bytes(data))
    with pytest.raises(McapDamage, match=r"chunk 1 of 1 \(at byte [\d,]+\) fails its CRC"):
        verify_mcap(mcap)
    with pytest.raises(BagError, match="bag.mcap is damaged"):
        check_bag(bag)

    data[chunk_data_offset(mcap) + 100] ^= 0x10
    data[record_offset(data, 0x0B) + 9] ^= 0x01  # the message count in the summary's Statistics record
    mcap.write_bytes(bytes(data))
    with pytest.raises(McapDamage, match="summary section"):
        verify_mcap(mcap)


def test_bags_without_crcs_are_reported_and_damage_found_while_reading_is_one_line(
    tmp_path, real_images, factorized_codec
):
    raw = tmp_path / "raw"
    image_bag(raw, real_images)
    mcap = raw / "raw.mcap"
    data = bytearray(mcap.read_bytes())
    offset = record_offset(data, 0x06)
    data[offset + 9 + 24: offset + 9 + 28] = b"\0\0\0\0"  # chunk CRC 0, as rosbags writes it
    mcap.write_bytes(bytes(data))
    assert check_bag(raw).unverified_chunks == 1
    assert "1 without a CRC" in "\n".join(_info_lines(raw))

    # a message record inside the chunk now claims 2**40 bytes: rosbags fails mid-stream
    at = record_offset(data, 0x05, chunk_data_offset(mcap))
    struct.pack_into("<Q", data, at + 1, 2**40)
    mcap.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(BagError, match=r"input bag .*raw is damaged after \d+ messages"):
        compress(raw, out, codec=factorized_codec, progress=False)
    assert not out.exists() and not partial_path(out).exists()


def _info_lines(bag: Path) -> list[str]:
    from imgcomp.rosbag import format_info

    return format_info(info(bag)).splitlines()


def test_a_bare_mcap_file_reads_with_its_real_size(tmp_path, real_images):
    bag = tmp_path / "bag"
    image_bag(bag, real_images, frames=1)
    mcap = bag / "bag.mcap"
    report = info(mcap)
    assert report["size_bytes"] == mcap.stat().st_size > 0 and report["storage"] == "mcap"
    with open_reader(mcap) as reader:
        assert reader.message_count == 2


# ---------------------------------------------------------------- bad bags through the CLI
@pytest.fixture(scope="module")
def bags(tmp_path_factory, real_images) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_bags")
    good = root / "good"
    image_bag(good, real_images)
    mcap = good / "good.mcap"
    data = mcap.read_bytes()

    def variant(name: str, content: bytes | None = None, src: Path = good) -> Path:
        path = root / name
        shutil.copytree(src, path)
        if content is not None:
            next(path.glob("*.mcap")).write_bytes(content)
        return path

    flipped = bytearray(data)
    for i in range(10):
        flipped[len(data) // 3 + 97 * i] ^= 1 << (i % 8)
    zeroed = bytearray(data)
    zeroed[len(data) // 2 - 2048: len(data) // 2 + 2048] = bytes(4096)
    text = root / "notes.txt"
    text.write_text("not a bag\n")
    metadata_only = root / "metadata_only"
    metadata_only.mkdir()
    shutil.copy(good / "metadata.yaml", metadata_only)
    sqlite = root / "sqlite"
    with Writer(sqlite, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/chatter", STRING, typestore=typestore())
        for i in range(200):
            writer.write(conn, T0 + i, typestore().serialize_cdr(typestore().types[STRING](data=f"m{i}" * 20), STRING))
    db3 = sqlite / "sqlite.db3"
    db3.write_bytes(db3.read_bytes()[: db3.stat().st_size // 2])
    killed = root / "killed"
    killed_run(killed, "message", overwrite=False)
    empty = root / "empty"
    empty.mkdir()
    features = root / "features"
    msg = make_features_msg(stamp_ns=T0, frame_id="cam", codec="factorized-mse", model_hash="0" * 16, quality=1,
                            height=48, width=64, encoding="rgb8", data=b"IMGC")
    with open_writer(features) as writer:
        writer.write(TOPIC + "/imgcomp", MSG_TYPE, T0, msg)
    return {
        "good": good,
        "features": features,
        "text file": text,
        "metadata only": metadata_only,
        "MCAP truncated at 50 %": variant("half", data[: len(data) // 2]),
        "MCAP truncated at 99 %": variant("most", data[: len(data) * 99 // 100]),
        "bit flips": variant("flipped", bytes(flipped)),
        "4 KB zeroed": variant("zeroed", bytes(zeroed)),
        "truncated .db3": sqlite,
        "killed run's partial": partial_path(killed) / "killed",
        "nonexistent path": root / "nope",
        "empty dir": empty,
    }


BAD_INPUTS = ["text file", "metadata only", "MCAP truncated at 50 %", "MCAP truncated at 99 %", "bit flips",
              "4 KB zeroed", "truncated .db3", "killed run's partial", "nonexistent path", "empty dir"]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "imgcomp", "bag", *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], what: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1, f"{what}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr and len(lines) == 1, f"{what}:\n{proc.stderr[-2000:]}"
    assert lines[0].startswith("imgcomp bag: error: "), f"{what}: {lines[0]}"


@pytest.mark.slow
def test_every_bad_bag_is_one_line_in_every_command(bags, tmp_path):
    out = tmp_path / "out"
    runs = {f"compress {case}": ("compress", bags[case], out, "--model", "factorized-mse", "--no-progress")
            for case in BAD_INPUTS}
    runs["compress wrong topic"] = ("compress", bags["good"], out, "--topic", "/nope", "--no-progress")
    runs["compress to a bare .mcap path"] = ("compress", bags["good"], tmp_path / "out.mcap", "--no-progress")
    runs.update({f"info {case}": ("info", bags[case]) for case in BAD_INPUTS})
    # decompress and eval read through the same checks as info: a few cases show the wiring
    some = ["text file", "MCAP truncated at 50 %", "bit flips", "killed run's partial"]
    runs.update({f"decompress {case}": ("decompress", bags[case], out, "--no-progress") for case in some})
    runs.update({f"eval {case} (compressed)": ("eval", bags[case], bags["good"], "--no-progress") for case in some})
    runs.update({f"eval {case} (raw)": ("eval", bags["features"], bags[case], "--no-progress") for case in some})
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(runs, pool.map(lambda args: run_cli(*args), runs.values())))
    for what, proc in results.items():
        assert_one_line_error(proc, what)
    assert not out.exists() and not partial_path(out).exists()
    assert not (tmp_path / "out.mcap").exists()
    assert "MCAP chunk 1 of 1" in results["compress bit flips"].stderr
    assert "fails its CRC" in results["compress 4 KB zeroed"].stderr
    assert "truncated" in results["info MCAP truncated at 50 %"].stderr
    assert "interrupted imgcomp run" in results["info killed run's partial"].stderr
    assert "/nope is not in the bag" in results["compress wrong topic"].stderr

    proc = run_cli("info", next(bags["good"].glob("*.mcap")))  # a bare .mcap file is a bag too
    assert proc.returncode == 0 and f"{next(bags['good'].glob('*.mcap')).stat().st_size:,} B" in proc.stdout
