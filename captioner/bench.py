"""Benchmark: captions of seven 384² rendered views by cadloop (ONNX Runtime)
and by transformers (PyTorch, CPU), same weights, same decoding settings, in
one run. Prints each time and the ratio, greedy and beam-3, fp32 and int8.

    python captioner/bench.py --random MODEL_DIR [INT8_DIR]
    python captioner/bench.py --model Salesforce/blip-image-captioning-base MODEL_DIR [INT8_DIR]

--random rebuilds export.py --random's model (same seed) for the transformers
side. The views come from `cadloop exec` on an example part; cadloop's time is
the one it logs for captioning (model loading excluded, as for transformers).
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CADLOOP = os.path.join(ROOT, "target", "release", "cadloop")


def render_views(work):
    out = os.path.join(work, "part")
    example = os.path.join(ROOT, "freecad-scripts", "examples", "l_bracket.py")
    subprocess.run([CADLOOP, "-q", "exec", example, "--out", out], check=True, stdout=subprocess.DEVNULL)
    return sorted(glob.glob(os.path.join(out, "views", "*.png")))


def cadloop_caption(model_dir, views, beams, threads):
    env = dict(os.environ, CADLOOP_CAPTIONER=model_dir)
    cmd = [CADLOOP, "caption", *views, "--beams", str(beams), "--max-length", "20", "--json"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    ms = float(re.search(r"caption_ms=([0-9.]+)", run.stderr).group(1))
    import json
    return ms / 1000.0, [c["caption"] for c in json.loads(run.stdout)]


def transformers_caption(model, size, mean, std, views, beams):
    from transformers import BlipImageProcessor

    processor = BlipImageProcessor(size={"height": size, "width": size}, image_mean=list(mean), image_std=list(std))
    images = [Image.open(v).convert("RGB") for v in views]
    start = time.perf_counter()
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        model.generate(pixel_values=pixels, num_beams=beams, max_length=20, do_sample=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("int8_dir", nargs="?")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--model", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.random:
        model, _, size, mean, std = export.random_base()
    else:
        model, _, size, mean, std = export.pretrained(args.model)
    with tempfile.TemporaryDirectory() as work:
        views = render_views(work)
        print(f"captioning {len(views)} views of {size}² on {args.threads} threads")
        for beams in (1, 3):
            label = "greedy" if beams == 1 else f"beam-{beams}"
            theirs = transformers_caption(model, size, mean, std, views, beams)
            ours, fp32 = cadloop_caption(args.model_dir, views, beams, args.threads)
            print(f"{label:8} transformers {theirs:7.2f} s   cadloop fp32 {ours:7.2f} s   ratio {theirs / ours:5.1f}x")
            if args.int8_dir:
                q, int8 = cadloop_caption(args.int8_dir, views, beams, args.threads)
                same = sum(a == b for a, b in zip(fp32, int8))
                print(f"{'':8} cadloop int8 {q:7.2f} s   ratio {theirs / q:5.1f}x   "
                      f"int8 caption = fp32 caption for {same}/{len(views)} views")


if __name__ == "__main__":
    main()
