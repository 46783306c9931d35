"""`imgcomp bench-video`: temporal mode on vtest.avi beside our intra mode and real libx264.

Rates are exact for every frame (every payload is produced). Quality (PSNR, MS-SSIM) is measured
on every `--psnr-every`-th frame, rendered from the encoder's latent (bit-identical to what a
StreamDecoder recovers: test/test_temporal.py). Timings: full StreamEncoder.encode and
StreamDecoder.decode per frame at one level. Loss: the decoder's rule (a P-frame is shown only
if its whole chain back to the key frame arrived) over random 1 % drops.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.eval.rd import RDPoint, bd_rate
from imgcomp.metrics import ms_ssim_index, psnr
from imgcomp.temporal.stream import StreamDecoder, StreamEncoder, synthesise
from imgcomp.video import read_video


def _ffmpeg_x264(frames: list[np.ndarray], crf: int, intra: bool, fps: float) -> tuple[int, list[np.ndarray]]:
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "v.h264"
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
               "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", str(crf), "-pix_fmt", "yuv420p"]
        if intra:
            cmd += ["-g", "1"]
        subprocess.run(cmd + [str(out)], input=b"".join(f.tobytes() for f in frames), check=True)
        size = out.stat().st_size
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    return size, list(decoded)


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


def run_video_bench(video: Path, out: Path, frames_n: int, scale: float, levels: list[int], intervals: list[int],
                    crfs: list[int], psnr_every: int, timing_frames: int, model: str = "hyperprior-mse") -> dict:
    torch.set_num_threads(2)
    t_start = time.perf_counter()
    frames, fps = read_video(video, frames_n)
    if scale != 1.0:
        frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
    n = len(frames)
    h, w = frames[0].shape[:2]
    pixels = h * w
    idx = list(range(0, n, psnr_every))
    codec = Codec(model)
    net = codec.net
    with torch.no_grad():
        g = [net.g_a(codec.image_tensor(f)) for f in frames]
    curves: dict[str, list[RDPoint]] = {}
    rows = []
    configs = [("intra", 1, True)] + [(f"P kf={k}", k, True) for k in intervals if k != 1] + [("P kf=10 no-RD", 10, False)]
    for level in levels:
        gain = net._gains(level - 1, 1)[0]
        yz = []
        with torch.no_grad():
            for gi in g:
                y = gi * gain
                yz.append((y, net.hyper_analyse(y)))
        for name, k, rd in configs:
            enc = StreamEncoder(codec, keyframe_interval=k, rd=rd)
            sizes, keys, lat = [], [], {}
            coding_ms = []
            for t, (y, z) in enumerate(yz):
                t0 = time.perf_counter()
                e = enc.encode_analysed(y, z, level, h, w, 3, "rgb8")
                coding_ms.append(1e3 * (time.perf_counter() - t0))
                sizes.append(len(e.payload))
                keys.append(e.keyframe)
                if t in idx:
                    lat[t] = e.y_hat
            header = type("H", (), {"height": h, "width": w, "quality": level, "channels": 3})
            decoded = {t: synthesise(codec, lat[t], header) for t in idx}
            p, m = _quality(frames, decoded, idx)
            bpp = 8 * float(np.sum(sizes)) / (n * pixels)
            row = {"codec": name, "level": level, "bpp": bpp, "psnr": p, "ms_ssim": m, "keyframes": int(np.sum(keys)),
                   "p_frame_bpp": 8 * float(np.mean([s for s, kf in zip(sizes, keys) if not kf] or [0])) / pixels,
                   "key_bpp": 8 * float(np.mean([s for s, kf in zip(sizes, keys) if kf])) / pixels,
                   "coding_ms_p50": float(np.median(coding_ms)),
                   "shown_at_1pct_drop": _shown_fraction(np.array(keys), 0.01, 200, np.random.default_rng(level))}
            rows.append(row)
            curves.setdefault(name, []).append(RDPoint(name, level, bpp, p, m))
            print(json.dumps(row), flush=True)
    for intra in (False, True):
        name = "x264 intra" if intra else "x264 zerolatency"
        for crf in crfs:
            size, dec = _ffmpeg_x264(frames, crf, intra, fps)
            p, m = _quality(frames, dec, idx)
            keys = np.ones(n, bool) if intra else (np.arange(n) % 250 == 0)
            row = {"codec": name, "crf": crf, "bpp": 8 * size / (n * pixels), "psnr": p, "ms_ssim": m,
                   "shown_at_1pct_drop": _shown_fraction(keys, 0.01, 200, np.random.default_rng(crf))}
            rows.append(row)
            curves.setdefault(name, []).append(RDPoint(name, crf, row["bpp"], p, m))
            print(json.dumps(row), flush=True)
    # end-to-end timings at one level: StreamEncoder.encode and StreamDecoder.decode per frame
    timing = {}
    tl = levels[len(levels) // 2]
    for name, k in (("intra", 1), ("P kf=10", 10)):
        enc, dec = StreamEncoder(codec, keyframe_interval=k), StreamDecoder(codec)
        e_ms = {"key": [], "P": []}
        d_ms = {"key": [], "P": []}
        for f in frames[:timing_frames]:
            t0 = time.perf_counter()
            e = enc.encode(f, quality=tl)
            t1 = time.perf_counter()
            img = dec.decode(e.payload)
            t2 = time.perf_counter()
            assert img is not None
            kind = "key" if e.keyframe else "P"
            e_ms[kind].append(1e3 * (t1 - t0))
            d_ms[kind].append(1e3 * (t2 - t1))
        timing[name] = {f"encode_{kk}": _pcts(v) for kk, v in e_ms.items() if v} | {f"decode_{kk}": _pcts(v) for kk, v in d_ms.items() if v}
    bd = {}
    for name in curves:
        if name == "intra":
            continue
        bd[name] = {"vs intra psnr": bd_rate(curves["intra"], curves[name], "psnr"),
                    "vs x264 zerolatency psnr": bd_rate(curves["x264 zerolatency"], curves[name], "psnr"),
                    "vs intra ms-ssim": bd_rate(curves["intra"], curves[name], "ms-ssim")}
    result = {"video": str(video), "frames": n, "size": [w, h], "scale": scale, "fps": fps, "levels": levels,
              "psnr_every": psnr_every, "timing_level": tl, "timing_frames": timing_frames, "rows": rows, "bd_rate_percent": bd,
              "timing_ms": timing, "seconds": round(time.perf_counter() - t_start, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "video.json").write_text(json.dumps(result, indent=1))
    (out / "video.md").write_text(markdown(result))
    _plot(curves, out / "video_rd.png")
    return result


def markdown(r: dict) -> str:
    lines = [f"# bench-video: {Path(r['video']).name}, {r['frames']} frames at {r['size'][0]}x{r['size'][1]}",
             "", f"Quality on every {r['psnr_every']}-th frame; rates over all frames. Run took {r['seconds']} s.", "",
             "| codec | level/crf | bpp | PSNR dB | MS-SSIM | key frames | P bpp | shown @1% drop |", "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['codec']} | {row.get('level', row.get('crf'))} | {row['bpp']:.4f} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} | "
                     f"{row.get('keyframes', '')} | {row.get('p_frame_bpp', float('nan')):.4f} | {row['shown_at_1pct_drop']:.3f} |")
    lines += ["", "## BD-rate (%)", "", "| codec | vs intra (PSNR) | vs x264 zerolatency (PSNR) | vs intra (MS-SSIM) |", "|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f}"  # noqa: E731
    for name, b in r["bd_rate_percent"].items():
        lines.append(f"| {name} | {fmt(b['vs intra psnr'])} | {fmt(b['vs x264 zerolatency psnr'])} | {fmt(b['vs intra ms-ssim'])} |")
    lines += ["", f"## Timings (ms, level {r['timing_level']}, first {r['timing_frames']} frames, 2 threads, CPU)", "",
              "| mode | kind | encode p50 | encode p95 | decode p50 | decode p95 |", "|---|---|---|---|---|---|"]
    for name, t in r["timing_ms"].items():
        for kind in ("key", "P"):
            if f"encode_{kind}" in t:
                e, d = t[f"encode_{kind}"], t[f"decode_{kind}"]
                lines.append(f"| {name} | {kind} | {e['p50']:.0f} | {e['p95']:.0f} | {d['p50']:.0f} | {d['p95']:.0f} |")
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
    p.add_argument("--video", type=Path, default=Path("data/video/vtest.avi"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/video"))
    p.add_argument("--frames", type=int, default=795)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--intervals", type=int, nargs="+", default=[1, 5, 10, 30])
    p.add_argument("--crfs", type=int, nargs="+", default=[20, 24, 28, 32, 36, 40])
    p.add_argument("--psnr-every", type=int, default=1)
    p.add_argument("--timing-frames", type=int, default=30)


def run_from_args(a) -> int:
    r = run_video_bench(a.video, a.out, a.frames, a.scale, a.levels, a.intervals, a.crfs, a.psnr_every, a.timing_frames)
    print(markdown(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="imgcomp bench-video")
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
