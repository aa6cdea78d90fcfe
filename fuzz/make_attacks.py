#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer targets (fuzz/corpus/<target>/), standard library only.

    fuzz/make_attacks.py [--model DIR] [--single FILE] [--out fuzz/corpus]
    fuzz/make_attacks.py --million FILE    one header with 1,000,000 tensors (not committed)

The safetensors seeds recreate the kinds of files in the safetensors project's `attacks/`
folder (our own code, from their description): header lengths far beyond the file and beyond
the 100 MB cap, a header length of 2^64 - 1, offsets that overlap, point outside the file, run
backwards or leave holes, shape x dtype sizes that overflow, duplicate names, nested and
non-object headers, and a header with many tensors (2048 here; --million writes the
million-tensor file of the original attack, about 60 MB, for a one-off run). --model (a
df-make-model folder) and --single (a df-make-model single-file checkpoint) add real config
files and real LDM tensor names.
"""
import argparse
import json
import os
import struct


def st_bytes(tensors, meta=None, pad=True, header_len=None, raw_header=None, data=None):
    """tensors: list of (name, dtype, shape, begin, end); data: the buffer (zeros if None)."""
    if raw_header is None:
        h = {}
        if meta is not None:
            h["__metadata__"] = meta
        end = 0
        for name, dtype, shape, b, e in tensors:
            h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
            end = max(end, e)
        raw_header = json.dumps(h, separators=(",", ":")).encode()
        if data is None:
            data = bytes(end)
    if pad:
        raw_header += b" " * ((8 - len(raw_header) % 8) % 8)
    n = len(raw_header) if header_len is None else header_len
    return struct.pack("<Q", n) + raw_header + (data or b"")


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


def safetensors_seeds():
    s = {}
    good = [("a", "F32", [2, 3], 0, 24), ("b", "F16", [4], 24, 32), ("c", "BF16", [1, 2], 32, 36),
            ("ids", "I64", [2], 36, 52)]
    s["valid"] = st_bytes(good, meta={"format": "pt"})
    s["valid_scalar_empty"] = st_bytes([("s", "F32", [], 0, 4), ("e", "F32", [0, 5], 4, 4)])
    # header length attacks
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    s["header_len_max"] = struct.pack("<Q", 2**64 - 1) + hdr + bytes(4)
    s["header_len_beyond_file"] = struct.pack("<Q", 1 << 40) + hdr + bytes(4)
    s["header_len_over_cap"] = struct.pack("<Q", 100000001) + hdr + bytes(4)
    s["header_len_zero"] = struct.pack("<Q", 0) + hdr
    s["header_len_short"] = struct.pack("<Q", 3) + hdr + bytes(4)
    s["truncated_length"] = b"\x10\x00\x00"
    s["empty"] = b""
    # offsets
    s["overlap"] = st_bytes([("a", "F32", [2], 0, 8), ("b", "F32", [2], 4, 12)])
    s["overlap_same"] = st_bytes([("a", "F32", [2], 0, 8), ("b", "F32", [2], 0, 8)])
    s["offsets_outside"] = st_bytes([("a", "F32", [2], 0, 8)], data=bytes(4))
    s["offsets_reversed"] = st_bytes([("a", "F32", [2], 8, 0)], data=bytes(8))
    s["offsets_hole"] = st_bytes([("a", "F32", [1], 0, 4), ("b", "F32", [1], 8, 12)])
    s["offsets_huge"] = st_bytes([("a", "F32", [1], 2**64 - 4, 2**64)], data=bytes(4))
    s["size_mismatch"] = st_bytes([("a", "F32", [3], 0, 8)])
    s["shape_overflow"] = st_bytes([("a", "F32", [2**62, 2**62], 0, 0)])
    s["shape_negative"] = st_bytes([("a", "F32", [-1], 0, 4)], data=bytes(4))
    s["too_many_dims"] = st_bytes([("a", "F32", [1] * 20, 0, 4)])
    s["bad_dtype"] = st_bytes([("a", "Q4", [1], 0, 4)])
    # header structure
    s["not_json"] = st_bytes([], raw_header=b"{not json", data=b"")
    s["not_object"] = st_bytes([], raw_header=b"[1,2,3]", data=b"")
    s["nested_deep"] = st_bytes([], raw_header=b"{\"a\":" + b"[" * 5000 + b"]" * 5000 + b"}",
                                data=b"")
    s["duplicate_names"] = st_bytes([], raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offse'
                                    b'ts":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":'
                                    b'[4,8]}}', data=bytes(8))
    s["metadata_not_strings"] = st_bytes([("a", "F32", [1], 0, 4)], meta={"format": 3})
    s["unpadded"] = st_bytes(good, pad=False)
    s["nul_in_name"] = st_bytes([("a\u0000b", "F32", [1], 0, 4)])
    # many tensors (the million-tensor attack, scaled down for the corpus)
    s["many_tensors"] = st_bytes([("t%d" % i, "F32", [0], 0, 0) for i in range(2048)])
    return s


def init_latent_seeds():
    # selector bytes: C = 1 + b0 % 4, H = 1 + b1 % 32, W = 1 + b2 % 32
    sel = bytes([3, 7, 7])  # [1, 4, 8, 8]
    lat = f32([0.1 * i for i in range(256)])
    s = {}
    s["valid"] = sel + st_bytes([("latents", "F32", [1, 4, 8, 8], 0, 1024)], data=lat)
    s["only_tensor"] = sel + st_bytes([("noise", "F32", [1, 4, 8, 8], 0, 1024)], data=lat)
    s["f16"] = sel + st_bytes([("latents", "F16", [1, 4, 8, 8], 0, 512)])
    s["wrong_shape"] = sel + st_bytes([("latents", "F32", [1, 4, 8, 4], 0, 512)])
    s["two_tensors"] = sel + st_bytes([("a", "F32", [1], 0, 4), ("b", "F32", [1], 4, 8)])
    s["nan"] = sel + st_bytes([("latents", "F32", [1, 4, 8, 8], 0, 1024)],
                              data=struct.pack("<f", float("nan")) * 256)
    s["header_len_max"] = sel + struct.pack("<Q", 2**64 - 1)
    s["int_dtype"] = sel + st_bytes([("latents", "I32", [1, 4, 8, 8], 0, 1024)])
    return s


UNET = {"_class_name": "UNet2DConditionModel", "in_channels": 4, "out_channels": 4,
        "block_out_channels": [32, 64], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "attention_head_dim": [2, 4],
        "cross_attention_dim": 64, "norm_num_groups": 32, "sample_size": 32}
VAE = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
       "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 32,
       "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
       "scaling_factor": 0.13025, "sample_size": 64}
CLIP = {"architectures": ["CLIPTextModel"], "hidden_size": 32, "intermediate_size": 37,
        "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 49408,
        "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": 32, "torch_dtype": "float32"}
SCHED = {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
         "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
         "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "leading"}
INDEX = {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.24.0",
         "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
         "text_encoder": ["transformers", "CLIPTextModel"],
         "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
         "tokenizer": ["transformers", "CLIPTokenizer"],
         "tokenizer_2": ["transformers", "CLIPTokenizer"],
         "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}


def config_seeds(model):
    s = {}
    files = {0: ("unet", UNET), 1: ("vae", VAE), 2: ("clip", CLIP), 3: ("sched", SCHED)}
    for sel, (name, obj) in files.items():
        s[name] = bytes([sel]) + json.dumps(obj, indent=1).encode()
        bad = dict(obj)
        for k in list(bad)[:4]:
            bad[k] = -1 if not isinstance(bad[k], int) else [None]
        s[name + "_types"] = bytes([sel]) + json.dumps(bad).encode()
        big = dict(obj)
        for k, v in big.items():
            if isinstance(v, int) and not isinstance(v, bool):
                big[k] = 2**31 + 7
        s[name + "_huge_ints"] = bytes([sel]) + json.dumps(big).encode()
        s[name + "_nan"] = bytes([sel]) + json.dumps(obj).replace("32", "NaN", 1).encode()
    s["deep"] = b"\x00" + b"[" * 10000
    s["dup_keys"] = b"\x03{\"beta_start\":1,\"beta_start\":\"x\"}"
    if model:
        for sel, rel in ((0, "unet/config.json"), (1, "vae/config.json"),
                         (2, "text_encoder/config.json"), (2, "text_encoder_2/config.json"),
                         (3, "scheduler/scheduler_config.json")):
            p = os.path.join(model, rel)
            if os.path.isfile(p):
                s["model_" + rel.replace("/", "_")] = bytes([sel]) + open(p, "rb").read()
    return s


def model_index_seeds(model):
    s = {"sdxl": json.dumps(INDEX, indent=2).encode()}
    sd15 = dict(INDEX, _class_name="StableDiffusionPipeline")
    del sd15["text_encoder_2"], sd15["tokenizer_2"]
    s["sd15"] = json.dumps(sd15).encode()
    s["wrong_types"] = json.dumps(dict(INDEX, unet=7, vae=["diffusers"])).encode()
    s["not_object"] = b"[\"unet\"]"
    s["unknown_class"] = json.dumps(dict(INDEX, _class_name="KandinskyPipeline")).encode()
    s["truncated"] = json.dumps(INDEX).encode()[:60]
    if model and os.path.isfile(os.path.join(model, "model_index.json")):
        s["model"] = open(os.path.join(model, "model_index.json"), "rb").read()
    return s


def ldm_name_seeds(single):
    s = {}
    s["unet_basic"] = ("model.diffusion_model.input_blocks.0.0.weight|32,4,3,3\n"
                       "model.diffusion_model.input_blocks.1.0.in_layers.0.weight|32\n"
                       "model.diffusion_model.input_blocks.3.0.op.weight|32,32,3,3\n"
                       "model.diffusion_model.middle_block.1.proj_in.weight|32,32\n"
                       "model.diffusion_model.output_blocks.2.1.conv.weight|32,32,3,3\n"
                       "model.diffusion_model.out.2.bias|4\n").encode()
    s["vae_clip"] = ("first_stage_model.decoder.mid.attn_1.q.weight|32,32,1,1\n"
                     "first_stage_model.encoder.down.0.block.0.norm1.weight|32\n"
                     "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
                     "|49,32\n"
                     "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"
                     "|96,32\n"
                     "conditioner.embedders.1.model.text_projection|32,32\n"
                     "conditioner.embedders.1.model.positional_embedding|77,32\n").encode()
    s["weird_indices"] = ("model.diffusion_model.input_blocks.99999999999.0.op.weight\n"
                          "model.diffusion_model.input_blocks.-1.1.x\n"
                          "model.diffusion_model.output_blocks.1.\n"
                          "model.diffusion_model.\n"
                          "conditioner.embedders.1.model.transformer.resblocks.7.attn."
                          "in_proj_weight|5,3\n").encode()
    if single and os.path.isfile(single):
        data = open(single, "rb").read()
        n = struct.unpack("<Q", data[:8])[0]
        h = json.loads(data[8:8 + n])
        names = ["%s|%s" % (k, ",".join(str(min(d, 63)) for d in v["shape"]))
                 for k, v in h.items() if k != "__metadata__"]
        s["single_file"] = "\n".join(names).encode()
    return s


def tokenizer_seeds():
    texts = ["Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
             "a photo of a cat's   <|startoftext|> hat!!! 1234567", "",
             "Ünïcödé café naïve ﬁ ligature Å", "東京の夜景 a city 夜",
             "emoji 🧑‍🚀 in space \t\n\r", "x" * 400, " ".join(["word"] * 120),
             "<|endoftext|><|endoftext|>"]
    s = {"t%d" % i: t.encode() for i, t in enumerate(texts)}
    s["invalid_utf8"] = b"abc\xff\xfe\xc0\xaf\xed\xa0\x80"
    s["nul"] = b"a\x00b"
    return s


def cli_seeds():
    args = [["-m", "model", "--steps", "30", "-s", "-1", "--cfg-scale=7.5", "-v"],
            ["--sampling-method", "dpm++2m", "--gn-compat", "original", "--no-thing"],
            ["--steps", "99999999999999999999"], ["--cfg-scale", "nan"], ["--seed=0x10"],
            ["-m"], ["--", "x"], ["--sampling-method=", "--steps="], ["-vv", "-mfoo"],
            ["--unknown"], ["help", "-h"]]
    return {"a%d" % i: b"\x00".join(a.encode() for a in arg) for i, arg in enumerate(args)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "corpus"))
    ap.add_argument("--model", help="df-make-model folder (its config files become seeds)")
    ap.add_argument("--single", help="df-make-model single-file checkpoint (its names)")
    ap.add_argument("--million", help="write the 1,000,000-tensor header file here and exit")
    a = ap.parse_args()
    if a.million:
        with open(a.million, "wb") as f:
            f.write(st_bytes([("t%d" % i, "F32", [0], 0, 0) for i in range(1000000)]))
        return
    sets = {"fuzz_safetensors": safetensors_seeds(), "fuzz_init_latent": init_latent_seeds(),
            "fuzz_configs": config_seeds(a.model), "fuzz_model_index": model_index_seeds(a.model),
            "fuzz_ldm_names": ldm_name_seeds(a.single), "fuzz_tokenizer": tokenizer_seeds(),
            "fuzz_cli_args": cli_seeds()}
    for target, seeds in sets.items():
        d = os.path.join(a.out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (d, len(seeds)))


if __name__ == "__main__":
    main()
