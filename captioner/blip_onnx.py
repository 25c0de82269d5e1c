"""Exports a BLIP captioning model (transformers' BlipForConditionalGeneration)
into the model folder cadloop's captioner loads (manifest format 2):

    vision.onnx          pixel_values [B,3,S,S] -> image_embeds [B,N,H]
    decoder_init.onnx    input_ids [B,T], image_embeds [B,N,H]
                         -> logits [B,V] (last position), and per layer i:
                            self_k.i/self_v.i [B,h,T,d], cross_k.i/cross_v.i [B,h,N,d]
    decoder_step.onnx    input_ids [R,1], self_k.i/self_v.i [R,h,P,d], cross_k.i/cross_v.i [B,h,N,d]
                         -> logits [R,V], next_k.i/next_v.i [R,h,P+1,d]
    tokenizer.json       WordPiece tokenizer (tokenizers library format)
    cadloop-captioner.json  the manifest: special token ids, image size, mean/std, ...

Each layer's keys and values are inputs and outputs of their own: a stacked
[L, ...] tensor would be sliced per layer inside the graph, and ONNX Runtime
copies every slice, the 577 image positions' keys and values included, at
every step. In the step graph R = B × beams rows, image-major: the beams of
an image share its cross-attention keys and values (they attend to the same
image), so they are neither copied per beam nor read once per beam.

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

    def attend_shared(self, q, k, v):
        """Cross-attention of R = B × beams rows against B images' keys/values:
        each image's beams are extra query rows of one product."""
        b = k.shape[0]
        q = q.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # [B, h, beams, d]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, h, beams, d]
        return context.transpose(1, 2).reshape(-1, 1, self.heads * self.head_dim)

    def run(self, input_ids, past_k, past_v, cross_k, cross_v, image_embeds):
        """One pass; past_k/v are per-layer lists (holding 0 positions in the
        first pass). The first pass (image_embeds given) computes the cross
        keys/values; later passes take them per image, shared by its beams.
        Returns logits of the last position and per-layer lists of the new
        self-attention keys/values and of the cross keys/values."""
        past = past_k[0].shape[2]
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
                context = self.attend(self.split(ca.query(hidden)), ck, cv, None)
            else:
                ck, cv = cross_k[i], cross_v[i]
                context = self.attend_shared(ca.query(hidden), ck, cv)
            all_ck.append(ck)
            all_cv.append(cv)
            hidden = layer.crossattention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        # The head on a [B, 1, H] slice exports as MatMul + Add (a 2-D input
        # gives Gemm, which int8 quantisation leaves in fp32: 94 MB read per step).
        logits = self.lm.cls(hidden[:, -1:, :])[:, 0]
        return logits, new_k, new_v, all_ck, all_cv


class DecoderInit(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, image_embeds):
        d = self.decoder
        b = input_ids.shape[0]
        empty = [image_embeds.new_zeros((b, d.heads, 0, d.head_dim)) for _ in d.layers]
        logits, k, v, ck, cv = d.run(input_ids, empty, empty, None, None, image_embeds)
        return (logits, *k, *v, *ck, *cv)


class DecoderStep(torch.nn.Module):
    """Inputs: input_ids, then per layer self_k, self_v, cross_k, cross_v (in
    that grouping: all self_k first). Outputs: logits, all next_k, all next_v."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, *cache):
        n = len(self.decoder.layers)
        self_k, self_v, cross_k, cross_v = (list(cache[i * n:(i + 1) * n]) for i in range(4))
        logits, k, v, _, _ = self.decoder.run(input_ids, self_k, self_v, cross_k, cross_v, None)
        return (logits, *k, *v)


class Vision(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.vision = model.vision_model

    def forward(self, pixel_values):
        return self.vision(pixel_values=pixel_values)[0]


def split_init(outputs, layers):
    """DecoderInit's flat outputs as logits and four per-layer lists."""
    logits, rest = outputs[0], outputs[1:]
    return (logits, *(list(rest[i * layers:(i + 1) * layers]) for i in range(4)))


def check_decoder(model, pixel_values, input_ids, atol=1e-4, beams=3):
    """The explicit-cache decoder gives transformers' logits, step by step,
    also when each image's row is repeated as `beams` rows sharing its cross
    keys/values (as beam search runs it)."""
    decoder = Decoder(model.text_decoder).eval()
    n = len(decoder.layers)
    with torch.no_grad():
        embeds = model.vision_model(pixel_values=pixel_values)[0]
        reference = model.text_decoder(
            input_ids=input_ids, encoder_hidden_states=embeds, return_dict=True
        ).logits
        logits, k, v, ck, cv = split_init(DecoderInit(decoder)(input_ids[:, :1], embeds), n)
        worst = (logits - reference[:, 0]).abs().max().item()
        repeat = lambda x: x.repeat_interleave(beams, dim=0)  # noqa: E731
        bk, bv = [repeat(x) for x in k], [repeat(x) for x in v]
        for t in range(1, input_ids.shape[1]):
            ids = input_ids[:, t : t + 1]
            out = DecoderStep(decoder)(ids, *k, *v, *ck, *cv)
            logits, k, v = out[0], list(out[1:n + 1]), list(out[n + 1:])
            worst = max(worst, (logits - reference[:, t]).abs().max().item())
            out = DecoderStep(decoder)(repeat(ids), *bk, *bv, *ck, *cv)
            shared, bk, bv = out[0], list(out[1:n + 1]), list(out[n + 1:])
            worst = max(worst, (shared - repeat(reference[:, t])).abs().max().item())
    if worst > atol:
        raise SystemExit(f"the exported decoder differs from transformers by {worst:g} (limit {atol:g})")
    return worst


def names(prefix, layers):
    return [f"{prefix}.{i}" for i in range(layers)]


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
    n = text.num_hidden_layers
    pixels = torch.zeros(batch, 3, image_size, image_size)
    beams = 2
    with torch.no_grad():
        embeds = model.vision_model(pixel_values=pixels)[0]
        ids = torch.full((batch, 2), text.bos_token_id, dtype=torch.long)
        _, k, v, ck, cv = split_init(DecoderInit(decoder)(ids, embeds), n)
    # The step is traced with 2 beams per image, so rows and images differ.
    step_ids = ids[:, :1].repeat_interleave(beams, dim=0)
    k = [x.repeat_interleave(beams, dim=0) for x in k]
    v = [x.repeat_interleave(beams, dim=0) for x in v]
    cross = {name: {0: "images", 2: "patches"} for name in names("cross_k", n) + names("cross_v", n)}
    init_axes = {"input_ids": {0: "batch", 1: "length"}, "image_embeds": {0: "batch", 1: "patches"},
                 "logits": {0: "batch"},
                 **{name: {0: "batch", 2: "length"} for name in names("self_k", n) + names("self_v", n)},
                 **{name: {0: "batch", 2: "patches"} for name in names("cross_k", n) + names("cross_v", n)}}
    step_axes = {"input_ids": {0: "rows"}, "logits": {0: "rows"},
                 **{name: {0: "rows", 2: "past"} for name in names("self_k", n) + names("self_v", n)},
                 **{name: {0: "rows", 2: "total"} for name in names("next_k", n) + names("next_v", n)},
                 **cross}
    exports = [
        (Vision(model), (pixels,), "vision.onnx", ["pixel_values"], ["image_embeds"],
         {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}),
        (DecoderInit(decoder), (ids, embeds), "decoder_init.onnx",
         ["input_ids", "image_embeds"],
         ["logits", *names("self_k", n), *names("self_v", n), *names("cross_k", n), *names("cross_v", n)],
         init_axes),
        (DecoderStep(decoder), (step_ids, *k, *v, *ck, *cv), "decoder_step.onnx",
         ["input_ids", *names("self_k", n), *names("self_v", n), *names("cross_k", n), *names("cross_v", n)],
         ["logits", *names("next_k", n), *names("next_v", n)],
         step_axes),
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
        "format": 2,
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
