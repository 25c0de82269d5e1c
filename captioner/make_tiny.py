"""Makes the captioner's test fixture: a tiny, randomly initialised BLIP with
the real architecture (hidden size 32, 2 layers), exported exactly as
export.py exports real weights, plus reference outputs computed with
transformers. Offline: the WordPiece vocabulary is vocabulary.py's.

    python captioner/make_tiny.py tests/fixtures/tiny-blip
    python captioner/make_tiny.py --checkpoint DIR    # the same model for finetune.py

Deterministic: a rerun writes byte-identical files (fixed seeds, no timestamps).
Needs torch, transformers, onnx and pillow (see captioner/README.md).
"""

import argparse
import hashlib
import json
import os

import numpy as np
import torch
from PIL import Image, ImageDraw

import blip_onnx
import vocabulary

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 384
MAX_LENGTH = 20
PREFIX = "a cad model of"


def write_tokenizer(vocab, path):
    tokenizer = vocabulary.build_tokenizer(vocab)
    tokenizer.save(path, pretty=True)
    return tokenizer


def tiny_model(vocab):
    from transformers import BlipConfig, BlipForConditionalGeneration

    config = BlipConfig(
        text_config=dict(
            vocab_size=max(vocab.values()) + 1, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64,
            bos_token_id=vocab["[DEC]"], eos_token_id=vocab["[CLS]"],
            sep_token_id=vocab["[SEP]"], pad_token_id=vocab["[PAD]"],
        ),
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=IMAGE_SIZE, patch_size=16,
        ),
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    # The default initialisation is tiny; larger weights make decoding choices
    # depend on the image, so the reference ids exercise the whole graph.
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model


def test_image():
    """A 500 × 300 picture (not 384², so resizing is exercised): a shaded part with a hole."""
    image = Image.new("RGB", (500, 300), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 80, 440, 230), fill=(150, 172, 205), outline=(40, 40, 48), width=3)
    draw.ellipse((215, 120, 285, 190), fill=(255, 255, 255), outline=(40, 40, 48), width=3)
    draw.polygon([(60, 80), (120, 40), (500, 40), (440, 80)], fill=(120, 140, 170))
    return image


def write_checkpoint(out):
    """The tiny model as a transformers checkpoint folder (weights, config and
    a BlipProcessor), the starting point captioner/finetune.py reads as it
    reads a downloaded BLIP."""
    from transformers import BertTokenizerFast, BlipImageProcessor, BlipProcessor

    vocab = vocabulary.vocabulary()
    model = tiny_model(vocab)
    tokenizer = BertTokenizerFast(tokenizer_object=vocabulary.build_tokenizer(vocab))
    image = BlipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=list(MEAN), image_std=list(STD)
    )
    model.save_pretrained(out)
    BlipProcessor(image_processor=image, tokenizer=tokenizer).save_pretrained(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="folder to write the fixture into")
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="write the same untrained model as a transformers checkpoint folder instead")
    args = parser.parse_args()
    if args.checkpoint:
        write_checkpoint(args.checkpoint)
        print(f"wrote {args.checkpoint}")
        return
    if not args.out:
        parser.error("give the fixture folder (OUT) or --checkpoint DIR")
    from transformers import BlipImageProcessor

    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    vocab = vocabulary.vocabulary()
    tokenizer = write_tokenizer(vocab, os.path.join(args.out, "tokenizer.json"))
    model = tiny_model(vocab)

    image = test_image()
    image.save(os.path.join(args.out, "test.png"), optimize=False)
    second = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (30, 200, 40))
    second.save(os.path.join(args.out, "green.png"), optimize=False)
    processor = BlipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=list(MEAN), image_std=list(STD)
    )
    pixels = processor(images=[image, second], return_tensors="pt")["pixel_values"]

    prefix_ids = tokenizer.encode(PREFIX, add_special_tokens=False).ids
    bos = vocab["[DEC]"]
    check_ids = torch.tensor([[bos] + prefix_ids + prefix_ids[:2]] * 2)
    worst = blip_onnx.check_decoder(model, pixels, check_ids)

    blip_onnx.export_model(model, args.out, IMAGE_SIZE)
    blip_onnx.write_manifest(model, args.out, IMAGE_SIZE, MEAN, STD, MAX_LENGTH)

    # Token ids for [test.png, green.png]. A random decoder repeats one token
    # forever without a repetition penalty, so most cases use 1.5.
    cases = {}
    with torch.no_grad():
        # Beam cases stop at 12 tokens: at 20, two beams of green.png tie to 1e-4 in
        # log-probability and float rounding (torch vs ONNX Runtime) picks either.
        for name, beams, penalty, prompt, length in [
            ("greedy", 1, 1.0, None, MAX_LENGTH),
            ("greedy_penalty", 1, 1.5, None, MAX_LENGTH),
            ("beam3_penalty", 3, 1.5, None, 12),
            ("beam3_penalty_prefix", 3, 1.5, PREFIX, 12),
        ]:
            kwargs = dict(pixel_values=pixels, num_beams=beams, max_length=length,
                          do_sample=False, repetition_penalty=penalty)
            if prompt is not None:
                # BLIP's processor adds [CLS] … [SEP]; generate swaps [CLS] for [DEC] and drops [SEP].
                kwargs["input_ids"] = torch.tensor([tokenizer.encode(prompt).ids] * 2)
            cases[name] = {"beams": beams, "repetition_penalty": penalty, "prefix": prompt,
                           "max_length": length, "ids": model.generate(**kwargs).tolist()}
    # The reference tensor of test.png (the first image), little-endian f32, NCHW.
    pixels[:1].numpy().astype("<f4").tofile(os.path.join(args.out, "pixels.f32"))
    references = {
        "images": ["test.png", "green.png"],
        "max_length": MAX_LENGTH,
        "prefix_ids": prefix_ids,
        "pixels_shape": list(pixels[:1].shape),
        "decoder_check_max_abs_diff": float(f"{worst:.3g}"),
        "cases": cases,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(references, f, indent=1, sort_keys=True)
        f.write("\n")
    for name in sorted(os.listdir(args.out)):
        digest = hashlib.sha256(open(os.path.join(args.out, name), "rb").read()).hexdigest()[:16]
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main()
