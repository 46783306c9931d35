"""`imgcomp bench-video`: temporal mode on vtest.avi beside our intra mode and real libx264.

Rates are exact for every frame (every payload is produced, container included). Quality (PSNR,
MS-SSIM) is measured on every `--psnr-every`-th frame (a stride coprime with every keyframe
interval, so that key and P-frames are sampled in their true proportion), rendered from the
encoder's latent (bit-identical to what a StreamDecoder recovers: test/test_temporal.py).

x264 runs with `-preset veryfast -tune zerolatency` three ways: its default GOP (keyint 250, so
at most one I-frame in a short clip), `-g K` for each of our keyframe intervals K (like for like:
an I-frame every K frames, as a receiver that joins or loses a frame needs), and intra only.

Timings: StreamEncoder.encode and StreamDecoder.decode per frame at one level, the intra and the
temporal encoder interleaved frame by frame on the same frames (same size, same threads, same
load). Loss: the decoder's rule (a P-frame is shown only if its whole chain back to the key
frame arrived) over random 1 % drops.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from imgcomp.bitstream import unpack
from imgcomp.codec import Codec
from imgcomp.eval.rd import RDPoint, bd_rate
from imgcomp.metrics import ms_ssim_index, psnr
from imgcomp.temporal.stream import StreamDecoder, StreamEncoder, synthesise
from imgcomp.multitask.scenes.moving_camera import RENDERED_FPS, parse_source, validation_clip
from imgcomp.temporal.tables import TemporalTables
from imgcomp.video import read_video

X264_DEFAULT_GOP = 250  # libx264's keyint when -g is not given


def _ffmpeg_x264(frames: list[np.ndarray], crf: int, gop: int | None, fps: float, threads: int = 0) -> tuple[int, list[np.ndarray]]:
    """Bytes and decoded frames of libx264 veryfast zerolatency at `crf`; `gop`: -g (None: x264's default)."""
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "v.h264"
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
               "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", str(crf), "-pix_fmt", "yuv420p"]
        if threads:
            cmd += ["-threads", str(threads)]
        if gop is not None:
            cmd += ["-g", str(gop)]
        subprocess.run(cmd + [str(out)], input=b"".join(f.tobytes() for f in frames), check=True)
        size = out.stat().st_size
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    return size, list(decoded)


def read_source(source: str, frames_n: int) -> tuple[list[np.ndarray], float]:
    """RGB frames and frame rate of a video file, or of `rendered:SEED` (a rendered moving-camera
    clip of a validation scene, imgcomp.multitask.scenes.moving_camera, 640x480 at 10 fps)."""
    seed = parse_source(source)
    if seed is None:
        return read_video(Path(source), frames_n)
    return validation_clip(seed, frames_n), RENDERED_FPS


def _quality(frames, decoded, idx) -> tuple[float, float]:
    return float(np.mean([psnr(frames[i], decoded[i]) for i in idx])), float(np.mean([ms_ssim_index(frames[i], decoded[i]) for i in idx]))


def _shown_fraction(keyframes: np.ndarray, drop: float, trials: int, rng: np.random.Generator) -> float:
    shown = 0
    for _ in range(trials):
        lost = rng.random(keyframes.size) < drop
        ok = True
        for i in range(keyframes.size):
            ok = (not lost[i]) and (keyframes[i] or ok)
            shown += ok
    return shown / (trials * keyframes.size)


def _pcts(ms: list[float]) -> dict:
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "n": len(ms)}


def _x264_name(gop: int | None) -> str:
    return "x264 zerolatency" if gop is None else ("x264 intra" if gop == 1 else f"x264 zerolatency -g {gop}")


def _variants(intervals: list[int], tables: list[Path], multipliers: list[float]) -> list[dict]:
    """Our configurations: intra, P at each interval, P at 10 without RD, and the kf=10 variants
    asked for (other tables files, other RD multipliers), each compared with plain P kf=10."""
    out = [{"name": "intra", "k": 1}] + [{"name": f"P kf={k}", "k": k} for k in intervals if k != 1]
    out.append({"name": "P kf=10 no-RD", "k": 10, "rd": False})
    out += [{"name": f"P kf=10 [{p.stem}]", "k": 10, "tables": TemporalTables.from_bytes(p.read_bytes())} for p in tables]
    out += [{"name": f"P kf=10 lambda x{m:g}", "k": 10, "rd_multiplier": m} for m in multipliers]
    return out


def _container_bytes(payload: bytes) -> int:
    """Bytes of a payload that are not entropy-coded strings (header, lengths, CRC, tables id)."""
    frame = unpack(payload)
    id_bytes = 8 if frame.header.frame_type else 0
    return len(payload) - sum(len(s) for s in frame.streams) + id_bytes



class _SharedKeyFrames:
    """The codec as a StreamEncoder sees it, except that `compress_analysed` returns its last
    result again when called with that very (y, z): a key frame's entropy coding depends on (y, z)
    only, so an intra frame and a key frame of any group get the same strings. The cache is keyed
    by the arguments themselves (identity: it holds them, so they cannot be replaced by another
    tensor at the same address), not by state the caller must keep in step."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._last: tuple[torch.Tensor, torch.Tensor, dict] | None = None

    def __getattr__(self, name: str):
        return getattr(self._codec, name)

    def compress_analysed(self, y: torch.Tensor, z: torch.Tensor) -> dict:
        last = self._last
        if last is not None and last[0] is y and last[1] is z:
            return last[2]
        out = self._codec.compress_analysed(y, z)
        self._last = (y, z, out)
        return out


class _Tally:
    """What one configuration at one level produced, frame by frame."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.keys: list[bool] = []
        self.container: list[int] = []
        self.psnrs: list[float] = []
        self.ssims: list[float] = []

    def add(self, payload: bytes, keyframe: bool, quality: tuple[float, float] | None) -> None:
        self.sizes.append(len(payload))
        self.keys.append(keyframe)
        if not keyframe:
            self.container.append(_container_bytes(payload))
        if quality is not None:
            self.psnrs.append(quality[0])
            self.ssims.append(quality[1])

    def row(self, name: str, level: int, pixels: int) -> dict:
        sizes, keys = self.sizes, self.keys
        return {"codec": name, "level": level, "bpp": 8 * float(np.sum(sizes)) / (len(sizes) * pixels),
                "psnr": float(np.mean(self.psnrs)), "ms_ssim": float(np.mean(self.ssims)), "keyframes": int(np.sum(keys)),
                "p_frame_bpp": 8 * float(np.mean([s for s, kf in zip(sizes, keys) if not kf] or [0])) / pixels,
                "key_bpp": 8 * float(np.mean([s for s, kf in zip(sizes, keys) if kf])) / pixels,
                "p_container_bytes": float(np.mean(self.container)) if self.container else 0.0,
                "shown_at_1pct_drop": _shown_fraction(np.array(keys), 0.01, 200, np.random.default_rng(level))}


def _encoder(codec, cfg: dict) -> StreamEncoder:
    return StreamEncoder(codec, keyframe_interval=cfg["k"], rd=cfg.get("rd", True), tables=cfg.get("tables"),
                         rd_multiplier=cfg.get("rd_multiplier", 0.5))


def our_rows(codec: Codec, frames: list[np.ndarray], levels: list[int], configs: list[dict], idx: list[int],
             shared: bool = True) -> tuple[list[dict], dict[str, list[RDPoint]]]:
    """Rows (bpp, PSNR, MS-SSIM, key frames, ...) of our configurations at each level.

    Every payload is produced by a StreamEncoder through the real rANS coder, and quality is that
    of the image synthesised from the latent a decoder recovers. Frames are taken one at a time,
    each fed to every (level, configuration) encoder, so memory does not grow with the clip. With
    `shared` (the default) the work that is the same in every configuration is done once per
    frame: the analysis transform (once for all levels: the levels' gains scale its output), the
    hyper-analysis per level, a key frame's entropy coding per level, and the synthesis and metrics
    of a decoded latent another configuration already produced (keyed by the latent's bytes). With
    `shared=False` every configuration encodes every frame from the image (`StreamEncoder.encode`)
    and renders every sampled frame: test/test_bench_video.py checks that both give identical rows."""
    h, w = frames[0].shape[:2]
    pixels = h * w
    net = codec.net
    sample = set(idx)
    coder = _SharedKeyFrames(codec) if shared else codec
    cells = [(level, i) for level in levels for i in range(len(configs))]
    encoders = {cell: _encoder(coder, configs[cell[1]]) for cell in cells}
    tallies = {cell: _Tally() for cell in cells}
    gains = {level: net._gains(level - 1, 1)[0] for level in levels} if shared else {}
    for t, frame in enumerate(frames):
        with torch.no_grad():
            g = net.g_a(codec.image_tensor(frame)) if shared else None
        for level in levels:
            header = _Header(h, w, level)
            if shared:
                with torch.no_grad():
                    y = g * gains[level]
                    z = net.hyper_analyse(y)
            seen: dict[bytes, tuple[float, float]] = {}  # decoded latent of this frame and level -> quality
            for i in range(len(configs)):
                enc = encoders[(level, i)]
                e = enc.encode_analysed(y, z, level, h, w, 3, "rgb8") if shared else enc.encode(frame, quality=level)
                q = _sampled_quality(codec, frame, e.y_hat, header, seen if shared else {}) if t in sample else None
                tallies[(level, i)].add(e.payload, e.keyframe, q)
    rows, curves = [], {}
    for level, i in cells:
        name = configs[i]["name"]
        row = tallies[(level, i)].row(name, level, pixels)
        rows.append(row)
        curves.setdefault(name, []).append(RDPoint(name, level, row["bpp"], row["psnr"], row["ms_ssim"]))
        print(json.dumps(row), flush=True)
    return rows, curves


@dataclass(frozen=True)
class _Header:
    """The fields of a FrameHeader that `synthesise` reads."""

    height: int
    width: int
    quality: int
    channels: int = 3


def _sampled_quality(codec: Codec, frame: np.ndarray, y_hat: np.ndarray, header: _Header, seen: dict) -> tuple[float, float]:
    """PSNR and MS-SSIM of the image synthesised from `y_hat`, reused from `seen` for a latent
    already rendered."""
    key = hashlib.blake2b(np.ascontiguousarray(y_hat).tobytes(), digest_size=16).digest()
    q = seen.get(key)
    if q is None:
        decoded = synthesise(codec, y_hat, header)
        q = seen[key] = (psnr(frame, decoded), ms_ssim_index(frame, decoded))
    return q


def run_video_bench(video: Path, out: Path, frames_n: int, scale: float, levels: list[int], intervals: list[int],
                    crfs: list[int], psnr_every: int, timing_frames: int, model: str = "hyperprior-mse",
                    tables: list[Path] = (), multipliers: list[float] = (), threads: int = 2,
                    x264_gops: list[int] | None = None, command: str | None = None) -> dict:
    shared = [k for k in intervals if k > 1 and math.gcd(k, psnr_every) > 1]
    if shared:
        raise ValueError(f"--psnr-every {psnr_every} shares a factor with keyframe interval(s) {shared}: "
                         "quality would be sampled on key frames only; take a stride coprime with every interval")
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    frames, fps = read_source(str(video), frames_n)
    if scale != 1.0:
        frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
    n = len(frames)
    h, w = frames[0].shape[:2]
    pixels = h * w
    idx = list(range(0, n, psnr_every))
    codec = Codec(model)
    configs = _variants(intervals, list(tables), list(multipliers))
    rows, curves = our_rows(codec, frames, levels, configs, idx)
    same_gop = [k for k in intervals if k > 1] if x264_gops is None else [k for k in x264_gops if k > 1]
    gops = [None] + same_gop + [1]
    for gop in gops:
        name = _x264_name(gop)
        for crf in crfs:
            size, dec = _ffmpeg_x264(frames, crf, gop, fps, threads)
            p, m = _quality(frames, dec, idx)
            keys = np.arange(n) % (gop or X264_DEFAULT_GOP) == 0
            row = {"codec": name, "crf": crf, "gop": gop or X264_DEFAULT_GOP, "bpp": 8 * size / (n * pixels), "psnr": p, "ms_ssim": m,
                   "shown_at_1pct_drop": _shown_fraction(keys, 0.01, 200, np.random.default_rng(crf))}
            rows.append(row)
            curves.setdefault(name, []).append(RDPoint(name, crf, row["bpp"], p, m))
            print(json.dumps(row), flush=True)
    timing = _timings(codec, frames[:timing_frames], levels[len(levels) // 2])
    bd = {}
    for cfg in configs[1:] + [{"name": _x264_name(gop)} for gop in gops]:
        name = cfg["name"]
        b = {"vs intra psnr": bd_rate(curves["intra"], curves[name], "psnr"),
             "vs x264 zerolatency psnr": bd_rate(curves["x264 zerolatency"], curves[name], "psnr"),
             "vs intra ms-ssim": bd_rate(curves["intra"], curves[name], "ms-ssim")}
        k = cfg.get("k")
        if k and _x264_name(k) in curves:
            b["vs x264 same GOP psnr"] = bd_rate(curves[_x264_name(k)], curves[name], "psnr")
            b["same GOP"] = k
        if "P kf=10" in curves and name.startswith("P kf=10 ") and name != "P kf=10":
            b["vs P kf=10 psnr"] = bd_rate(curves["P kf=10"], curves[name], "psnr")
        bd[name] = b
    result = {"command": command, "video": str(video), "frames": n, "size": [w, h], "scale": scale, "fps": fps, "levels": levels,
              "psnr_every": psnr_every, "timing_level": levels[len(levels) // 2], "timing_frames": timing_frames, "threads": threads, "rows": rows,
              "bd_rate_percent": bd, "timing_ms": timing, "seconds": round(time.perf_counter() - t_start, 1),
              "load_average": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]},
              "tables": {cfg["name"]: cfg["tables"].tables_id.hex() for cfg in configs if "tables" in cfg}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "video.json").write_text(json.dumps(result, indent=1))
    (out / "video.md").write_text(markdown(result))
    _plot(curves, out / "video_rd.png")
    return result


def _timings(codec: Codec, frames: list[np.ndarray], level: int) -> dict:
    """Per-frame ms of StreamEncoder.encode and StreamDecoder.decode, intra (keyframe_interval 0)
    and temporal (10), interleaved frame by frame so that both see the same frames and load."""
    coders = {"intra": (StreamEncoder(codec, keyframe_interval=0), StreamDecoder(codec)),
              "P kf=10": (StreamEncoder(codec, keyframe_interval=10), StreamDecoder(codec))}
    ms: dict[str, dict[str, list[float]]] = {name: {} for name in coders}
    for f in frames:
        for name, (enc, dec) in coders.items():
            t0 = time.perf_counter()
            e = enc.encode(f, quality=level)
            t1 = time.perf_counter()
            img = dec.decode(e.payload)
            t2 = time.perf_counter()
            assert img is not None
            kind = "key" if e.keyframe else "P"
            ms[name].setdefault(f"encode_{kind}", []).append(1e3 * (t1 - t0))
            ms[name].setdefault(f"decode_{kind}", []).append(1e3 * (t2 - t1))
    timing = {name: {k: _pcts(v) for k, v in d.items()} for name, d in ms.items()}
    if "encode_P" in timing["P kf=10"]:
        timing["P / intra (p50)"] = {op: timing["P kf=10"][f"{op}_P"]["p50"] / timing["intra"][f"{op}_key"]["p50"] for op in ("encode", "decode")}
    return timing


def markdown(r: dict) -> str:
    load = r.get("load_average", {})
    lines = [f"# bench-video: {Path(r['video']).name}, {r['frames']} frames at {r['size'][0]}x{r['size'][1]}",
             "", f"Quality on every {r['psnr_every']}-th frame ({len(range(0, r['frames'], r['psnr_every']))} frames: 0, {r['psnr_every']}, ...); "
             f"rates over all {r['frames']} frames (whole payloads). Run took {r['seconds']} s; "
             f"load average {load.get('start', ['?'])[0]} at the start, {load.get('end', ['?'])[0]} at the end (2 cores).", ""]
    if r.get("command"):
        lines += [f"Command: `{r['command']}`", ""]
    lines += [
             "| codec | level/crf | bpp | PSNR dB | MS-SSIM | key frames | P bpp | P container B | shown @1% drop |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['codec']} | {row.get('level', row.get('crf'))} | {row['bpp']:.4f} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} | "
                     f"{row.get('keyframes', '')} | {row.get('p_frame_bpp', float('nan')):.4f} | "
                     f"{row.get('p_container_bytes', float('nan')):.0f} | {row['shown_at_1pct_drop']:.3f} |")
    lines += ["", "## BD-rate (%)", "",
              "x264: libx264 through Debian's ffmpeg, `-preset veryfast -tune zerolatency -crf N`"
              + (f" `-threads {r['threads']}`" if r.get("threads") else "") + ", encoded and decoded in this run. "
              "x264 zerolatency: its default GOP (keyint 250); same GOP: x264 with `-g` equal to the row's keyframe interval.", "",
              "| codec | vs intra (PSNR) | vs x264 zerolatency (PSNR) | vs x264 same GOP (PSNR) | vs P kf=10 (PSNR) | vs intra (MS-SSIM) |",
              "|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f}"  # noqa: E731
    for name, b in r["bd_rate_percent"].items():
        same = f"{fmt(b['vs x264 same GOP psnr'])} (-g {b['same GOP']})" if "same GOP" in b else ""
        lines.append(f"| {name} | {fmt(b['vs intra psnr'])} | {fmt(b['vs x264 zerolatency psnr'])} | {same} | "
                     f"{fmt(b['vs P kf=10 psnr']) if 'vs P kf=10 psnr' in b else ''} | {fmt(b['vs intra ms-ssim'])} |")
    lines += ["", f"## Timings (ms, level {r['timing_level']}, first {r['timing_frames']} frames, intra and P interleaved, {r.get('threads', 2)} torch thread(s), CPU)", "",
              "| mode | kind | encode p50 | encode p95 | decode p50 | decode p95 |", "|---|---|---|---|---|---|"]
    for name, t in r["timing_ms"].items():
        if name == "P / intra (p50)":
            continue
        for kind in ("key", "P"):
            if f"encode_{kind}" in t:
                e, d = t[f"encode_{kind}"], t[f"decode_{kind}"]
                lines.append(f"| {name} | {kind} | {e['p50']:.0f} | {e['p95']:.0f} | {d['p50']:.0f} | {d['p95']:.0f} |")
    if "P / intra (p50)" in r["timing_ms"]:
        ratio = r["timing_ms"]["P / intra (p50)"]
        lines += ["", f"P-frame / intra frame (p50): encode {ratio['encode']:.2f}x, decode {ratio['decode']:.2f}x (bar: at most 1.15x)."]
    return "\n".join(lines) + "\n"


def _plot(curves: dict[str, list[RDPoint]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, pts in curves.items():
        pts = sorted(pts, key=lambda p: p.bpp)
        ax.plot([p.bpp for p in pts], [p.psnr for p in pts], "o-", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("bpp")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def add_arguments(p) -> None:
    p.add_argument("--video", type=Path, default=Path("data/video/vtest.avi"),
                   help="a video file, or rendered:SEED for a rendered moving-camera clip (640x480, 10 fps) of "
                        "validation scene SEED (>= 2000; lower seeds are the temporal trainer's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/video"))
    p.add_argument("--frames", type=int, default=795)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--intervals", type=int, nargs="+", default=[1, 5, 10, 30])
    p.add_argument("--crfs", type=int, nargs="+", default=[20, 24, 28, 32, 36, 40])
    p.add_argument("--psnr-every", type=int, default=1)
    p.add_argument("--timing-frames", type=int, default=30)
    p.add_argument("--x264-gops", type=int, nargs="*", default=None,
                   help="x264 -g values run besides its default GOP and intra only (default: every keyframe interval > 1)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (timings are measured with them)")
    p.add_argument("--tables", type=Path, nargs="*", default=[],
                   help="other temporal tables files (python -m imgcomp.training.temporal --out) to compare at keyframe interval 10")
    p.add_argument("--rd-multipliers", type=float, nargs="*", default=[],
                   help="other multipliers of the encoder's RD lambda (default 0.5) to compare at keyframe interval 10")


def run_from_args(a) -> int:
    import sys

    command = "python -m imgcomp " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else None
    r = run_video_bench(a.video, a.out, a.frames, a.scale, a.levels, a.intervals, a.crfs, a.psnr_every, a.timing_frames,
                        tables=a.tables, multipliers=a.rd_multipliers, threads=a.threads, x264_gops=a.x264_gops, command=command)
    print(markdown(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="imgcomp bench-video")
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
