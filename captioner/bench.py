"""Benchmark: captions of seven 384² rendered views by cadloop (ONNX Runtime)
and by transformers (PyTorch, CPU), same weights, same decoding settings, in
one run. Prints each time and the ratio, greedy and beam-3, fp32 and int8,
then how far int8 agrees with fp32.

    python captioner/bench.py --random MODEL_DIR [INT8_DIR]
    python captioner/bench.py --model Salesforce/blip-image-captioning-base MODEL_DIR [INT8_DIR]
    python captioner/bench.py --agreement MODEL_DIR INT8_DIR     # agreement only, any model
    python captioner/bench.py --cpu avx2 ...                     # as on an AVX2-only CPU

--cpu PROFILE runs everything (transformers, ONNX Runtime, cadloop) seeing an
older CPU class (avx2, avx512, avx-vnni, avx512-vnni; see captioner/cpu_as.c):
the kernels that class gets, run natively on this machine, so one machine
measures each path. The timings are this machine's cores running that
class's kernels, not that class's hardware.

--random rebuilds export.py --random's model (same seed) for the transformers
side. The views come from `cadloop exec` on an example part; cadloop's time is
the one it logs for captioning (model loading excluded, as for transformers).

Agreement, int8 against fp32 on the same views: the image embeddings'
cosine; along fp32's greedy caption, each step's logits (cosine) and
next-token choice (top-1 agreement), int8 fed fp32's tokens so that one
early difference does not count at every later step; and the share of views
whose greedy caption is the same.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image

import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cadloop binary that captions; --cadloop names another.
CADLOOP = os.path.join(ROOT, "target", "release", "cadloop")
CPU_PROFILES = ("native", "avx2", "avx512", "avx-vnni", "avx512-vnni")


def see_cpu_as(profile):
    """Runs this script again seeing `profile`'s CPU class (captioner/cpu_as.c,
    built into target/); returns when it already does."""
    if os.environ.get("CADLOOP_CPU_AS", "native") == profile:
        return
    library = os.path.join(ROOT, "target", "cpu_as", "cpu_as.so")
    os.makedirs(os.path.dirname(library), exist_ok=True)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library,
                    os.path.join(ROOT, "captioner", "cpu_as.c")], check=True)
    env = dict(os.environ, CADLOOP_CPU_AS=profile, LD_PRELOAD=library)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def cpu_line():
    """The machine's CPU and the class this run sees."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    profile = os.environ.get("CADLOOP_CPU_AS", "native")
    seen = "its own features" if profile == "native" else f"seen as {profile} (captioner/cpu_as.c)"
    return f"CPU: {model}, {seen}"


def render_views(work):
    out = os.path.join(work, "part")
    example = os.path.join(ROOT, "freecad-scripts", "examples", "l_bracket.py")
    subprocess.run([CADLOOP, "-q", "exec", example, "--out", out], check=True, stdout=subprocess.DEVNULL)
    return sorted(glob.glob(os.path.join(out, "views", "*.png")))


def cadloop_caption(model_dir, views, beams, threads):
    env = dict(os.environ, CADLOOP_CAPTIONER=model_dir)
    cmd = [CADLOOP, "caption", *views, "--beams", str(beams), "--max-length", "20", "--json"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    records = json.loads(run.stdout)
    return records[0]["batch_ms"] / 1000.0, [c["caption"] for c in records]


def transformers_caption(model, size, mean, std, views, beams):
    from transformers import BlipImageProcessor

    processor = BlipImageProcessor(size={"height": size, "width": size}, image_mean=list(mean), image_std=list(std))
    images = [Image.open(v).convert("RGB") for v in views]
    start = time.perf_counter()
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        model.generate(pixel_values=pixels, num_beams=beams, max_length=20, do_sample=False)
    return time.perf_counter() - start


class Graphs:
    """A captioner folder's graphs under ONNX Runtime's Python API (format 2)."""

    def __init__(self, folder, threads):
        import onnxruntime as ort

        with open(os.path.join(folder, "cadloop-captioner.json")) as f:
            self.manifest = json.load(f)
        if self.manifest["format"] != 2:
            raise SystemExit(f"{folder}: --agreement reads format 2 folders; export it again")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # As cadloop runs them: int8 weights without export.py's record of
        # their range may use all of it, which the u8×s8 kernels of CPUs
        # without VNNI saturate; ONNX Runtime's u8×u8 ones are exact
        # everywhere (cadloop asks for them only where needed, for speed).
        if "quantization" not in self.manifest:
            options.add_session_config_entry("session.x64quantprecision", "1")
        self.sessions = {name: ort.InferenceSession(os.path.join(folder, path), options,
                                                    providers=["CPUExecutionProvider"])
                         for name, path in self.manifest["graphs"].items()}

    def vision(self, pixels):
        return self.sessions["vision"].run(None, {"pixel_values": pixels})[0]

    def decode(self, embeds, tokens=None, length=20):
        """Greedy decoding from [DEC]; with `tokens` ([B, T]), fed those
        instead of its own choices. Gives the chosen tokens and every step's logits."""
        import numpy as np

        n = self.manifest["layers"]
        b = embeds.shape[0]
        ids = np.full((b, 1), self.manifest["bos_token_id"], dtype=np.int64)
        out = self.sessions["decoder_init"].run(None, {"input_ids": ids, "image_embeds": embeds})
        logits, cache = out[0], out[1:]
        self_kv, cross = cache[:2 * n], cache[2 * n:]
        names = [f"{k}.{i}" for k in ("self_k", "self_v", "cross_k", "cross_v") for i in range(n)]
        chosen, steps = [], []
        for t in range(length - 1):
            steps.append(logits)
            pick = logits.argmax(-1) if tokens is None else tokens[:, t]
            chosen.append(pick)
            if t == length - 2:
                break
            feeds = {"input_ids": pick[:, None].astype(np.int64)}
            feeds.update(zip(names, [*self_kv, *cross]))
            out = self.sessions["decoder_step"].run(None, feeds)
            logits, self_kv = out[0], out[1:]
        return np.stack(chosen, 1), np.stack(steps, 1)


def cosine(a, b):
    import numpy as np

    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)


def agreement(fp32_dir, int8_dir, views, threads):
    """int8 against fp32 on the views; prints and returns the figures."""
    import numpy as np
    from transformers import BlipImageProcessor

    fp32, int8 = Graphs(fp32_dir, threads), Graphs(int8_dir, threads)
    m = fp32.manifest
    processor = BlipImageProcessor(size={"height": m["image_size"], "width": m["image_size"]},
                                   image_mean=m["mean"], image_std=m["std"])
    pixels = processor(images=[Image.open(v).convert("RGB") for v in views], return_tensors="np")["pixel_values"]
    pixels = pixels.astype(np.float32)
    e32, e8 = fp32.vision(pixels), int8.vision(pixels)
    tokens, l32 = fp32.decode(e32)
    own, _ = int8.decode(e8)
    _, l8 = int8.decode(e8, tokens=tokens)
    # Steps after fp32's [SEP] are not part of its caption.
    sep = m["sep_token_id"]
    live = np.cumsum(np.concatenate([np.zeros((len(views), 1), int), tokens[:, :-1] == sep], 1), 1) == 0
    c = cosine(l32, l8)[live]
    top1 = (l32.argmax(-1) == l8.argmax(-1))[live]
    margin = np.sort(l32, -1)
    gap = (margin[..., -1] - margin[..., -2])[live]
    same = sum(np.array_equal(a[:list(a).index(sep) + 1] if sep in a else a,
                              b[:list(b).index(sep) + 1] if sep in b else b) for a, b in zip(tokens, own))
    figures = {
        "image_embedding_cosine_min": float(cosine(e32, e8).min()),
        "logit_cosine_mean": float(c.mean()), "logit_cosine_min": float(c.min()),
        "top1_agreement": float(top1.mean()), "steps": int(live.sum()),
        "fp32_top1_margin_median": float(np.median(gap)),
        "same_greedy_caption": f"{same}/{len(views)}",
        "cpu": os.environ.get("CADLOOP_CPU_AS", "native"),
    }
    print(f"int8 vs fp32 on {len(views)} views: image embeddings cosine ≥ {figures['image_embedding_cosine_min']:.5f}; "
          f"logits cosine mean {figures['logit_cosine_mean']:.5f} (min {figures['logit_cosine_min']:.5f}); "
          f"next-token top-1 agreement {figures['top1_agreement']:.4f} over {figures['steps']} steps "
          f"(fp32's median top-1 margin {figures['fp32_top1_margin_median']:.3f} logits); "
          f"same greedy caption {figures['same_greedy_caption']}")
    return figures


def main():
    global CADLOOP
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("int8_dir", nargs="?")
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--model", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--agreement", action="store_true", help="only int8 against fp32, no timing")
    parser.add_argument("--json", action="store_true", help="with --agreement: the figures as JSON too")
    parser.add_argument("--cadloop", default=CADLOOP, help="the cadloop binary (default: this checkout's release build)")
    parser.add_argument("--cpu", choices=CPU_PROFILES, default="native",
                        help="run as on this CPU class (hides this machine's newer features)")
    args = parser.parse_args()
    CADLOOP = args.cadloop
    see_cpu_as(args.cpu)
    print(cpu_line())
    torch.set_num_threads(args.threads)
    if args.agreement:
        if not args.int8_dir:
            parser.error("--agreement needs MODEL_DIR and INT8_DIR")
        with tempfile.TemporaryDirectory() as work:
            figures = agreement(args.model_dir, args.int8_dir, render_views(work), args.threads)
        if args.json:
            print(json.dumps(figures))
        return
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
        if args.int8_dir:
            try:
                agreement(args.model_dir, args.int8_dir, views, args.threads)
            except SystemExit as reason:
                print(f"no agreement figures: {reason}")


if __name__ == "__main__":
    main()
