"""BD-rates of the two hyperprior models against each classical codec on a subset of an `imgcomp eval`
run's images (its rd.json per-image rows), e.g. the held-out split's photos or its video frames:

    PYTHONPATH=. python scripts/rd_subset.py benchmarks/results/eval-heldout/rd.json lomiri-
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
from imgcomp.eval.rd import RDPoint, bd_rate  # noqa: E402
result = json.load(open(sys.argv[1]))
prefix = sys.argv[2]
rows = [r for r in result["per_image"] if r["image"].startswith(prefix)]
curves = {}
for codec in dict.fromkeys(r["codec"] for r in rows):
    pts = []
    for s in dict.fromkeys(r["setting"] for r in rows if r["codec"] == codec):
        sel = [r for r in rows if r["codec"] == codec and r["setting"] == s]
        pts.append(RDPoint(codec, s, float(np.mean([r["bpp"] for r in sel])), float(np.mean([r["psnr"] for r in sel])), float(np.mean([r["ms_ssim"] for r in sel]))))
    curves[codec] = pts
n = len({r["image"] for r in rows})
for model in ("hyperprior-mse", "hyperprior-msssim"):
    top = max(curves[model], key=lambda p: p.setting)
    cells = [f"{c}: {bd_rate(curves[c], curves[model], 'psnr'):+.1f} / {bd_rate(curves[c], curves[model], 'ms_ssim'):+.1f}" if bd_rate(curves[c], curves[model], 'psnr') is not None else f"{c}: n/a" for c in ("JPEG (OpenCV 4:2:0)", "WebP", "AVIF 4:4:4", "AVIF 4:2:0", "JPEG XL")]
    print(f"{prefix!r} ({n} images) {model}: top {top.psnr:.2f} dB at {top.bpp:.3f} bpp; " + "; ".join(cells))
