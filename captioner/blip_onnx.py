"""Exports a BLIP captioning model (transformers' BlipForConditionalGeneration)
into the model folder cadloop's captioner loads:

    vision.onnx          pixel_values [B,3,S,S] -> image_embeds [B,N,H]
    decoder_init.onnx    input_ids [B,T], image_embeds [B,N,H]
                         -> logits [B,V] (last position), self_k/self_v [L,B,h,T,d],
                            cross_k/cross_v [L,B,h,N,d]
    decoder_step.onnx    input_ids [B,1], self_k/self_v [L,B,h,P,d], cross_k/cross_v
                         -> logits [B,V], self_k/self_v [L,B,h,P+1,d]
    tokenizer.json       WordPiece tokenizer (tokenizers library format)
    cadloop-captioner.json  the manifest: special token ids, image size, mean/std, ...

The decoder is re-expressed here with explicit key/value tensors (the
transformers cache objects do not export cleanly): the same modules and
weights, the same arithmetic; `check_decoder` compares its logits with
transformers' own forward pass before anything is written.

Used by export.py (real or random weights) and make_tiny.py (the test fixture).
"""

import copy
import json
import math
import os

import torch

MANIFEST = "cadloop-captioner.json"
OPSET = 17


class Decoder(torch.nn.Module):
    """BLIP's text decoder with the key/value cache as plain tensors."""

    def __init__(self, text_decoder):
        super().__init__()
        self.lm = text_decoder
        config = text_decoder.config
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.layers = text_decoder.bert.encoder.layer

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def attend(self, q, k, v, mask):
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v).transpose(1, 2)
        b, t = context.shape[0], context.shape[1]
        return context.reshape(b, t, self.heads * self.head_dim)

    def embed(self, input_ids, past):
        emb = self.lm.bert.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) + past
        hidden = emb.word_embeddings(input_ids) + emb.position_embeddings(positions).unsqueeze(0)
        return emb.LayerNorm(hidden)

    def run(self, input_ids, past_k, past_v, cross_k, cross_v, image_embeds):
        """One pass; past_k/v may hold 0 positions. Returns logits of the last
        position, the new self-attention keys/values, and the cross keys/values."""
        past = past_k.shape[3]
        hidden = self.embed(input_ids, past)
        t = input_ids.shape[1]
        # Causal mask over [past + t] keys for the t new queries.
        total = past + t
        rows = torch.arange(t, device=input_ids.device).unsqueeze(1) + past
        cols = torch.arange(total, device=input_ids.device).unsqueeze(0)
        mask = torch.where(cols > rows, torch.tensor(float("-inf")), torch.tensor(0.0))
        new_k, new_v, all_ck, all_cv = [], [], [], []
        for i, layer in enumerate(self.layers):
            sa = layer.attention.self
            q = self.split(sa.query(hidden))
            k = torch.cat([past_k[i], self.split(sa.key(hidden))], dim=2)
            v = torch.cat([past_v[i], self.split(sa.value(hidden))], dim=2)
            new_k.append(k)
            new_v.append(v)
            hidden = layer.attention.output(self.attend(q, k, v, mask), hidden)
            ca = layer.crossattention.self
            if image_embeds is not None:
                ck = self.split(ca.key(image_embeds))
                cv = self.split(ca.value(image_embeds))
            else:
                ck, cv = cross_k[i], cross_v[i]
            all_ck.append(ck)
            all_cv.append(cv)
            q = self.split(ca.query(hidden))
            hidden = layer.crossattention.output(self.attend(q, ck, cv, None), hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        logits = self.lm.cls(hidden[:, -1, :])
        return logits, torch.stack(new_k), torch.stack(new_v), torch.stack(all_ck), torch.stack(all_cv)


class DecoderInit(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, image_embeds):
        d = self.decoder
        b = input_ids.shape[0]
        empty = image_embeds.new_zeros((len(d.layers), b, d.heads, 0, d.head_dim))
        return d.run(input_ids, empty, empty, None, None, image_embeds)


class DecoderStep(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, self_k, self_v, cross_k, cross_v):
        logits, k, v, _, _ = self.decoder.run(input_ids, self_k, self_v, cross_k, cross_v, None)
        return logits, k, v


class Vision(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.vision = model.vision_model

    def forward(self, pixel_values):
        return self.vision(pixel_values=pixel_values)[0]


def check_decoder(model, pixel_values, input_ids, atol=1e-4):
    """The explicit-cache decoder gives transformers' logits, step by step."""
    decoder = Decoder(model.text_decoder).eval()
    with torch.no_grad():
        embeds = model.vision_model(pixel_values=pixel_values)[0]
        reference = model.text_decoder(
            input_ids=input_ids, encoder_hidden_states=embeds, return_dict=True
        ).logits
        logits, k, v, ck, cv = DecoderInit(decoder)(input_ids[:, :1], embeds)
        worst = (logits - reference[:, 0]).abs().max().item()
        for t in range(1, input_ids.shape[1]):
            logits, k, v = DecoderStep(decoder)(input_ids[:, t : t + 1], k, v, ck, cv)
            worst = max(worst, (logits - reference[:, t]).abs().max().item())
    if worst > atol:
        raise SystemExit(f"the exported decoder differs from transformers by {worst:g} (limit {atol:g})")
    return worst


def export_model(model, out_dir, image_size, batch=2):
    """Writes the three ONNX graphs; shapes are dynamic in batch and length."""
    os.makedirs(out_dir, exist_ok=True)
    # BLIP ties the output layer to the word embeddings; as one ONNX
    # initializer read by a Gather and a MatMul it breaks int8 quantisation,
    # so the exported graphs get their own copy (the numbers do not change).
    model = copy.deepcopy(model).eval()
    head = model.text_decoder.cls.predictions.decoder
    head.weight = torch.nn.Parameter(head.weight.detach().clone())
    decoder = Decoder(model.text_decoder).eval()
    text = model.config.text_config
    pixels = torch.zeros(batch, 3, image_size, image_size)
    with torch.no_grad():
        embeds = model.vision_model(pixel_values=pixels)[0]
        ids = torch.full((batch, 2), text.bos_token_id, dtype=torch.long)
        _, k, v, ck, cv = DecoderInit(decoder)(ids, embeds)
    step_ids = ids[:, :1]
    kv = {0: "layers", 1: "batch", 2: "heads", 4: "head_dim"}
    exports = [
        (Vision(model), (pixels,), "vision.onnx", ["pixel_values"], ["image_embeds"],
         {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}),
        (DecoderInit(decoder), (ids, embeds), "decoder_init.onnx",
         ["input_ids", "image_embeds"], ["logits", "self_k", "self_v", "cross_k", "cross_v"],
         {"input_ids": {0: "batch", 1: "length"}, "image_embeds": {0: "batch", 1: "patches"},
          "logits": {0: "batch"},
          "self_k": {**kv, 3: "length"}, "self_v": {**kv, 3: "length"},
          "cross_k": {**kv, 3: "patches"}, "cross_v": {**kv, 3: "patches"}}),
        (DecoderStep(decoder), (step_ids, k, v, ck, cv), "decoder_step.onnx",
         ["input_ids", "self_k", "self_v", "cross_k", "cross_v"], ["logits", "next_k", "next_v"],
         {"input_ids": {0: "batch"}, "logits": {0: "batch"},
          "self_k": {**kv, 3: "past"}, "self_v": {**kv, 3: "past"},
          "cross_k": {**kv, 3: "patches"}, "cross_v": {**kv, 3: "patches"},
          "next_k": {**kv, 3: "total"}, "next_v": {**kv, 3: "total"}}),
    ]
    for module, args, name, inputs, outputs, axes in exports:
        torch.onnx.export(
            module, args, os.path.join(out_dir, name),
            input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )


def write_manifest(model, out_dir, image_size, mean, std, max_length, prefix_ids=None):
    text = model.config.text_config
    manifest = {
        "format": 1,
        "image_size": image_size,
        "mean": list(mean),
        "std": list(std),
        "rescale": 1.0 / 255.0,
        "bos_token_id": text.bos_token_id,
        "sep_token_id": text.sep_token_id,
        "pad_token_id": text.pad_token_id,
        "vocab_size": text.vocab_size,
        "layers": text.num_hidden_layers,
        "heads": text.num_attention_heads,
        "head_dim": text.hidden_size // text.num_attention_heads,
        "max_length": max_length,
        "graphs": {"vision": "vision.onnx", "decoder_init": "decoder_init.onnx",
                   "decoder_step": "decoder_step.onnx"},
        "tokenizer": "tokenizer.json",
    }
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
