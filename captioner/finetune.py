"""Fine-tunes a BLIP captioner on a captions dataset and exports it as a
cadloop captioner folder.

    python captioner/finetune.py DATA --model Salesforce/blip-image-captioning-base --out models/blip-cad
    python captioner/finetune.py DATA --model CHECKPOINT_DIR --out DIR --epochs 5 --quantize int8

DATA is a folder made by `cadloop captions-dataset` (metadata.jsonl and
images/). The model trains on the train split and is judged on the
validation split after every epoch; the epoch with the lowest validation
loss is kept (the lowest training loss when no model validates; --keep last
keeps the last). Then:

    OUT/                  the captioner folder cadloop loads (--captioner OUT)
    OUT/int8/             the same, int8-quantised (with --quantize int8)
    OUT/checkpoint/       the kept weights as a transformers checkpoint, to train on
    OUT/training.json     settings, data, losses per epoch and step, evaluation
    OUT/MODEL_CARD.md     the same for people

Before and after: the starting model and the fine-tuned one are both
exported and scored by `cadloop caption --eval` on --eval-split (BLEU-4,
ROUGE-L, CAD-word recall), when cadloop is built (target/release/cadloop or
--cadloop PATH).

The text decoder trains; the vision encoder stays frozen unless
--train-vision (frozen, its image embeddings are computed once and reused
every epoch). The decoder is taught as BLIP generates: [DEC], the text,
[SEP]. Needs torch and transformers (see captioner/README.md).
"""

import argparse
import copy
import datetime
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image

import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("file_name", "text", "id", "view", "split")
# Frozen image embeddings are kept in memory up to this many bytes.
CACHE_LIMIT = 8 << 30


def read_dataset(data):
    """The lines of DATA/metadata.jsonl, checked, by split."""
    path = os.path.join(data, "metadata.jsonl")
    if not os.path.isfile(path):
        raise SystemExit(f"{path} does not exist; make the dataset with `cadloop captions-dataset DATASET --out {data}`")
    splits = {"train": [], "validation": []}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                missing = [k for k in FIELDS if k not in item]
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path} line {number}: not JSON ({e})")
            if missing or item["split"] not in splits:
                raise SystemExit(f"{path} line {number}: needs {', '.join(FIELDS)} with split train or "
                                 f"validation (missing: {', '.join(missing) or 'none'}); remake it with "
                                 f"`cadloop captions-dataset`")
            image = os.path.join(data, item["file_name"])
            if not os.path.isfile(image):
                raise SystemExit(f"{path} line {number}: {image} does not exist")
            item["path"] = image
            splits[item["split"]].append(item)
    if not splits["train"]:
        raise SystemExit(f"{path} has no train images; make the dataset with a --split share above 0")
    return splits


class Encoded:
    """A split's images and texts as tensors: pixels (or their frozen
    embeddings), token ids [DEC] text [SEP], and the loss's labels."""

    def __init__(self, items, processor, bos, vocab_size, max_tokens):
        self.items = items
        self.processor = processor
        tokens = processor.tokenizer([i["text"] for i in items], padding="longest", truncation=True,
                                     max_length=max_tokens, return_tensors="pt")
        self.ids = tokens["input_ids"].clone()
        if len(items) and int(self.ids.max()) >= vocab_size:
            raise SystemExit(f"the tokenizer gives token id {int(self.ids.max())}, beyond the model's "
                             f"{vocab_size} tokens; the checkpoint's tokenizer and model do not belong together")
        self.ids[:, 0] = bos
        self.mask = tokens["attention_mask"]
        self.labels = self.ids.masked_fill(self.mask == 0, -100)
        self.embeds = None

    def __len__(self):
        return len(self.items)

    def pixels(self, rows):
        images = [Image.open(self.items[r]["path"]).convert("RGB") for r in rows]
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def cache_embeddings(self, model, device, batch):
        """Frozen vision: every image through the encoder once."""
        hidden = model.config.vision_config.hidden_size
        patches = (model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2 + 1
        if len(self) * patches * hidden * 4 > CACHE_LIMIT:
            return
        parts = []
        with torch.no_grad():
            for start in range(0, len(self), batch):
                rows = list(range(start, min(start + batch, len(self))))
                parts.append(model.vision_model(pixel_values=self.pixels(rows).to(device))[0].cpu())
        self.embeds = torch.cat(parts)

    def embeddings(self, model, rows, device, grad):
        if self.embeds is not None:
            return self.embeds[rows].to(device)
        with torch.set_grad_enabled(grad):
            return model.vision_model(pixel_values=self.pixels(rows).to(device))[0]


def losses(model, split, rows, device, smoothing, grad):
    """The batch's loss to train on (label-smoothed) and its plain cross-entropy."""
    embeds = split.embeddings(model, rows, device, grad)
    # Trim the batch's padding so each step pays only for its longest text.
    length = int(split.mask[rows].sum(1).max())
    ids = split.ids[rows, :length].to(device)
    mask = split.mask[rows, :length].to(device)
    labels = split.labels[rows, :length].to(device)
    logits = model.text_decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=embeds,
                                return_dict=True).logits
    logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    target = labels[:, 1:].reshape(-1)
    train = F.cross_entropy(logits, target, ignore_index=-100, label_smoothing=smoothing)
    plain = F.cross_entropy(logits.detach(), target, ignore_index=-100)
    return train, plain.item()


def validation_loss(model, split, device, batch):
    if not len(split):
        return None
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(split), batch):
            rows = list(range(start, min(start + batch, len(split))))
            _, plain = losses(model, split, rows, device, 0.0, False)
            n = int((split.labels[rows, 1:] != -100).sum())
            total, tokens = total + plain * n, tokens + n
    return total / tokens


def schedule(step, total, warmup):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(model, train_split, val_split, args, device):
    """The training loop; returns the per-epoch record, per-step losses and the kept weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    per_epoch = math.ceil(len(train_split) / args.batch)
    total = min(args.epochs * per_epoch, args.max_steps or args.epochs * per_epoch)
    epochs = math.ceil(total / per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedule(s, total, max(1, int(total * args.warmup))))
    order = random.Random(args.seed)
    history, steps, best, best_state, step = [], [], None, None, 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        rows = list(range(len(train_split)))
        order.shuffle(rows)
        model.train()
        if not args.train_vision:
            model.vision_model.eval()
        seen = []
        for start in range(0, len(rows), args.batch):
            if step >= total:
                break
            loss, plain = losses(model, train_split, rows[start:start + args.batch], device,
                                 args.label_smoothing, args.train_vision)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            steps.append(round(plain, 5))
            seen.append(plain)
            step += 1
        train_loss = sum(seen) / len(seen)
        val_loss = validation_loss(model, val_split, device, args.batch)
        record = {"epoch": epoch, "steps": step, "train_loss": round(train_loss, 5),
                  "validation_loss": None if val_loss is None else round(val_loss, 5),
                  "seconds": round(time.perf_counter() - started, 2)}
        history.append(record)
        better = best is None or judged_loss(record) < best
        if better:
            best = judged_loss(record)
        if better and args.keep == "best":
            best_state = snapshot(model)
        shown = "n/a" if val_loss is None else f"{val_loss:.4f}"
        print(f"epoch {epoch}/{epochs}: step {step}/{total}, training loss {train_loss:.4f}, "
              f"validation loss {shown}{' (best so far)' if better else ''}, {record['seconds']:.1f} s",
              flush=True)
    for record in history:
        record["kept"] = False
    if args.keep == "last":
        best_state = snapshot(model)
        history[-1]["kept"] = True
    else:
        min(history, key=judged_loss)["kept"] = True
    return history, steps, best_state


def snapshot(model):
    """A copy of the model's weights on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def judged_loss(record):
    """What an epoch is judged by: its validation loss, its training loss without one."""
    return record["validation_loss"] if record["validation_loss"] is not None else record["train_loss"]


def cadloop_binary(args):
    path = args.cadloop or os.path.join(ROOT, "target", "release", "cadloop")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def evaluate(cadloop, data, folder, split, beams):
    """`cadloop caption --eval` of one captioner folder: its scores."""
    run = subprocess.run(
        [cadloop, "-q", "caption", "--eval", os.path.join(data, "metadata.jsonl"), "--split", split,
         "--captioner", folder, "--beams", str(beams), "--json"],
        capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"cadloop caption --eval failed on {folder}:\n{run.stderr.strip()}")
    report = json.loads(run.stdout)
    return {k: report[k] for k in ("images", "bleu4", "rouge_l", "cad_recall", "cad_precision",
                                   "cad_words_matched", "cad_words_in_texts", "cad_words_in_captions")}


def before_and_after(args, base, tokenizer, image, out, splits):
    """Scores of the starting model and the fine-tuned one, or why there are none."""
    split = args.eval_split
    if split == "none":
        return {"skipped": "--eval-split none"}
    if split != "all" and not splits[split]:
        return {"skipped": f"the {split} split is empty"}
    cadloop = cadloop_binary(args)
    if cadloop is None:
        return {"skipped": "cadloop is not built (cargo build --release) and --cadloop was not given"}
    with tempfile.TemporaryDirectory() as work:
        starting = os.path.join(work, "base")
        export.write_folder(base, tokenizer, starting, *image, args.max_length)
        before = evaluate(cadloop, args.data, starting, split, args.eval_beams)
    after = evaluate(cadloop, args.data, out, split, args.eval_beams)
    return {"split": split, "beams": args.eval_beams, "before": before, "after": after}


def model_card(record):
    s, d = record["settings"], record["data"]
    lines = [
        "# cadloop captioner: fine-tuned BLIP", "",
        f"Fine-tuned from `{s['model']}` on `{d['path']}` by captioner/finetune.py on {record['date']}.",
        "Load it with `cadloop --captioner DIR` (this folder).", "",
        "## Data", "",
        f"- train: {d['train_images']} images of {d['train_models']} models",
        f"- validation: {d['validation_images']} images of {d['validation_models']} models",
        f"- views: {', '.join(d['views'])}", "",
        "## Training", "",
        f"- {record['steps']} steps over {len(record['epochs'])} epochs, batch {s['batch']}, "
        f"learning rate {s['lr']} (warm-up {s['warmup']:.0%}, cosine decay), weight decay {s['weight_decay']}, "
        f"label smoothing {s['label_smoothing']}",
        f"- trained: text decoder{' and vision encoder' if s['train_vision'] else ' (vision encoder frozen)'}",
        f"- texts cut to {s['max_text_tokens']} tokens; captions up to {s['max_length']} tokens",
        f"- {record['device']}, {record['seconds']:.0f} s, seed {s['seed']}, torch {record['versions']['torch']}, "
        f"transformers {record['versions']['transformers']}", "",
        "| epoch | steps | training loss | validation loss | kept |", "| ---: | ---: | ---: | ---: | :---: |",
    ]
    for e in record["epochs"]:
        val = "n/a" if e["validation_loss"] is None else f"{e['validation_loss']:.4f}"
        lines.append(f"| {e['epoch']} | {e['steps']} | {e['train_loss']:.4f} | {val} | {'yes' if e['kept'] else ''} |")
    lines += ["", "Losses are plain token cross-entropy (no label smoothing).", "", "## Evaluation", ""]
    ev = record["evaluation"]
    if "skipped" in ev:
        lines.append(f"Not evaluated: {ev['skipped']}.")
    else:
        share = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        lines += [f"`cadloop caption --eval` on the {ev['split']} split, beams {ev['beams']}:", "",
                  "| | images | BLEU-4 | ROUGE-L | CAD-word recall | CAD-word precision |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name in ("before", "after"):
            m = ev[name]
            lines.append(f"| {name} | {m['images']} | {m['bleu4']:.2f} | {m['rouge_l']:.3f} | "
                         f"{share(m['cad_recall'])} | {share(m['cad_precision'])} |")
    if record.get("int8"):
        lines += ["", "`int8/` holds the same model with int8 graphs (ONNX Runtime dynamic quantisation)."]
    return "\n".join(lines) + "\n"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder made by `cadloop captions-dataset`")
    parser.add_argument("--model", required=True, help="the BLIP checkpoint to start from: a name or a folder")
    parser.add_argument("--out", required=True, help="the captioner folder to write")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the steps spent warming up")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--train-vision", action="store_true", help="train the vision encoder too")
    parser.add_argument("--keep", choices=["best", "last"], default="best",
                        help="keep the epoch with the lowest validation loss, or the last one")
    parser.add_argument("--max-text-tokens", type=int, default=40, help="texts are cut to this many tokens")
    parser.add_argument("--max-length", type=int, default=30, help="caption length in tokens, in the manifest")
    parser.add_argument("--quantize", choices=["int8"], help="also write an int8 folder, OUT/int8")
    parser.add_argument("--eval-split", choices=["validation", "train", "all", "none"], default="validation")
    parser.add_argument("--eval-beams", type=int, default=3)
    parser.add_argument("--cadloop", help="the cadloop binary for the evaluation")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("epochs", "batch", "max_text_tokens", "max_length", "eval_beams"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error("--max-steps must be at least 1")
    if os.path.isdir(args.out) and os.listdir(args.out) and not os.path.isfile(os.path.join(args.out, "training.json")):
        parser.error(f"{args.out} holds files that finetune.py did not write; give an empty or new folder")
    return args


def main():
    args = parse_args()
    from transformers import BlipForConditionalGeneration, BlipProcessor

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = read_dataset(args.data)
    processor = BlipProcessor.from_pretrained(args.model)
    model = BlipForConditionalGeneration.from_pretrained(args.model).to(args.device)
    base = copy.deepcopy(model).cpu().eval()
    text = model.config.text_config
    max_tokens = min(args.max_text_tokens, text.max_position_embeddings)
    if args.max_length > text.max_position_embeddings:
        raise SystemExit(f"--max-length {args.max_length} is longer than the model's "
                         f"{text.max_position_embeddings} positions")
    model.vision_model.requires_grad_(args.train_vision)
    encoded = {name: Encoded(items, processor, text.bos_token_id, text.vocab_size, max_tokens) for name, items in splits.items()}
    if not args.train_vision:
        for split in encoded.values():
            split.cache_embeddings(model, args.device, args.batch)
    started = time.perf_counter()
    history, steps, best_state = train(model, encoded["train"], encoded["validation"], args, args.device)
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model = model.cpu().eval()

    # Everything is written beside OUT first and moved in at the end, so a
    # failure leaves no half-written captioner folder.
    final, args.out = args.out, f"{args.out.rstrip(os.sep)}.partial"
    shutil.rmtree(args.out, ignore_errors=True)
    checkpoint = os.path.join(args.out, "checkpoint")
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    image = export.image_settings(processor.image_processor)
    tokenizer = processor.tokenizer.backend_tokenizer
    export.write_folder(model, tokenizer, args.out, *image, args.max_length)
    if args.quantize == "int8":
        export.write_folder(model, tokenizer, os.path.join(args.out, "int8"), *image, args.max_length, int8=True)

    import transformers
    views = sorted({i["view"] for items in splits.values() for i in items})
    record = {
        "date": datetime.date.today().isoformat(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("data", "out", "cadloop")},
        "data": {"path": os.path.abspath(args.data), "views": views,
                 **{f"{n}_images": len(items) for n, items in splits.items()},
                 **{f"{n}_models": len({i["id"] for i in items}) for n, items in splits.items()}},
        "device": args.device, "seconds": round(seconds, 1), "steps": len(steps),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "epochs": history, "step_losses": steps, "int8": args.quantize == "int8",
        "evaluation": before_and_after(args, base, tokenizer, image, args.out, splits),
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "MODEL_CARD.md"), "w") as f:
        f.write(model_card(record))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(args.out, final)
    print(f"wrote {final}")


if __name__ == "__main__":
    main()
