"""Exports a BLIP captioning checkpoint into a cadloop captioner folder.

    python captioner/export.py OUT [--model Salesforce/blip-image-captioning-base]
    python captioner/export.py OUT --random          # BLIP-base shapes, random weights, offline
    python captioner/export.py OUT --quantize int8   # dynamic int8 graphs, for CPU speed

Downloading a checkpoint needs internet and torch/transformers on this
machine (see captioner/README.md). --random needs neither a download nor a
hub: it builds the same architecture from a config written here, for
benchmarks. Before writing anything the exported decoder is checked against
transformers' own forward pass.
"""

import argparse
import os
import shutil

import torch

import blip_onnx
import vocabulary

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def random_base():
    """BLIP-base's shapes (ViT-B/16 at 384 px, a 12-layer BERT decoder) with random weights."""
    from transformers import BlipConfig, BlipForConditionalGeneration

    vocab = vocabulary.vocabulary()
    size = 30524
    tokens = sorted(vocab, key=vocab.get)
    tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = vocabulary.build_tokenizer(vocab)
    config = BlipConfig(
        # BLIP-base's text decoder has 12 heads (BlipTextConfig's default is 8).
        text_config=dict(vocab_size=size, num_attention_heads=12,
                         bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"],
                         pad_token_id=vocab["[PAD]"], eos_token_id=vocab["[CLS]"]),
        vision_config=dict(image_size=384),
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    return model, tokenizer, 384, CLIP_MEAN, CLIP_STD


def pretrained(name):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(name)
    model = BlipForConditionalGeneration.from_pretrained(name).eval()
    size, mean, std = image_settings(processor.image_processor)
    return model, processor.tokenizer.backend_tokenizer, size, mean, std


def image_settings(image_processor):
    """A BLIP image processor's input size, mean and std."""
    size = image_processor.size
    size = size if isinstance(size, int) else size["height"]
    return size, tuple(image_processor.image_mean), tuple(image_processor.image_std)


# How export.py quantises, recorded in the manifest. cadloop reads weight_max,
# the largest magnitude of a quantised weight, to know that the weights leave
# the 16-bit headroom some CPUs need (see quantize below).
QUANTIZATION = {"weights": "int8, symmetric, a scale per output channel", "weight_max": 64,
                "activations": "uint8, quantised at run time"}


def quantize(out_dir):
    """int8 weights with a scale per output channel, in -64..64 (7 bits);
    activations quantised to uint8 at run time (ONNX Runtime fuses each
    product into one DynamicQuantizeMatMul or MatMulIntegerToFloat kernel).

    Why 7 bits: on x86 CPUs without VNNI or AMX (AVX2-only, AVX-512 without
    VNNI) ONNX Runtime's u8×s8 kernels add pairs of products in 16 bits
    (vpmaddubsw), which saturate when both weights of a pair are large:
    255 × 127 × 2 > 32767. With 7-bit weights a pair stays within
    255 × 64 × 2 = 32640, so every CPU computes the same exact integer
    products, at the same speed as 8 bits; the one bit costs a little
    precision everywhere (captioner/README.md has the measurements).
    Static QDQ quantisation calibrated on renders was measured slower here."""
    import json

    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("vision.onnx", "decoder_init.onnx", "decoder_step.onnx"):
        path = os.path.join(out_dir, name)
        tmp = path + ".fp32"
        shutil.move(path, tmp)
        quantize_dynamic(tmp, path, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        os.remove(tmp)
    manifest_path = os.path.join(out_dir, blip_onnx.MANIFEST)
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["quantization"] = QUANTIZATION
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


def write_folder(model, tokenizer, out, size, mean, std, max_length, int8=False):
    """A captioner folder cadloop loads: the decoder checked against
    transformers, the three graphs, the manifest and `tokenizer` (a
    `tokenizers.Tokenizer`); with `int8`, the graphs quantised."""
    os.makedirs(out, exist_ok=True)
    bos = model.config.text_config.bos_token_id
    check = torch.tensor([[bos, 1037, 2000, 2003]]) % model.config.text_config.vocab_size
    check[0, 0] = bos
    worst = blip_onnx.check_decoder(model, torch.zeros(1, 3, size, size), check, atol=1e-3)
    print(f"decoder check: largest logit difference {worst:.2e}")
    tokenizer.save(os.path.join(out, "tokenizer.json"), pretty=True)
    blip_onnx.export_model(model, out, size)
    blip_onnx.write_manifest(model, out, size, mean, std, max_length)
    if int8:
        quantize(out)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the model folder to write")
    parser.add_argument("--model", default="Salesforce/blip-image-captioning-base",
                        help="a Hugging Face BLIP captioning checkpoint (name or local folder)")
    parser.add_argument("--random", action="store_true", help="BLIP-base shapes with random weights, offline")
    parser.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation of the graphs")
    parser.add_argument("--max-length", type=int, default=20, help="default caption length in tokens")
    args = parser.parse_args()

    if args.random:
        model, tokenizer, size, mean, std = random_base()
    else:
        model, tokenizer, size, mean, std = pretrained(args.model)
    write_folder(model, tokenizer, args.out, size, mean, std, args.max_length, int8=args.quantize == "int8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
