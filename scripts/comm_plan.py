#!/usr/bin/env python3
"""The DistriFusion exchange plan of a UNet, counted from its config (no weights, no forward).

Mirrors what the runtime registers in its planning forward (src/runtime/patch.c): one conv-halo
entry per 3x3 conv except conv_in (resnet conv1/conv2, down/upsampler convs, conv_out), one K/V
entry per self-attention (attn1), one GroupNorm-moment entry per GroupNorm (resnet norm1/norm2,
Transformer2DModel.norm, conv_norm_out; corrected_async_gn / stale_gn only). Bands follow the
band rule of src/runtime/bands.h (deepest-level rows differ by at most one; K/V entries are
padded to the largest band).

Per-rank bytes of one asynchronous step, sent + received (the runtime's logical count):
  before (halos in the all-gather):  2 (P-1) x slot bytes
  after  (halos to the neighbours):  2 (P-1) x (slot bytes without halos)
                                     + 2 x neighbours x (one halo part per conv)
  output gather (every step):        2 x (bytes of the other ranks' noise-prediction blocks)

Usage:
  comm_plan.py --config unet/config.json | --arch sdxl  -W PX -H PX  --ranks N
               [--no-split-batch] [--no-cfg] [--mode corrected_async_gn] [--dtype f32|f16]
               [--json]
Prints one line per rank of the first CFG group, or one JSON object with --json.
"""
import argparse
import json
import sys

SDXL = {
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "transformer_layers_per_block": [1, 2, 10],
    "norm_num_groups": 32,
}
SD15 = {
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "transformer_layers_per_block": 1,
    "norm_num_groups": 32,
}


def bands(total, n):
    """bands.h without weights: rows per band at the deepest level."""
    if total < n:
        sys.exit("%d deepest-level rows cannot be cut into %d bands" % (total, n))
    q, r = divmod(total, n)
    return [q + (1 if i < r else 0) for i in range(n)]


def layers(cfg):
    """(kind, level, channels, width_level) of every exchanged tensor: kind conv/attn/gn."""
    bo = cfg["block_out_channels"]
    n = len(bo)
    lpb = cfg["layers_per_block"]
    tl = cfg.get("transformer_layers_per_block", 1)
    if isinstance(tl, int):
        tl = [tl] * n
    out = []

    def resnet(cin, cout, lvl):
        out.extend([("gn", lvl, cin), ("conv", lvl, cin), ("gn", lvl, cout), ("conv", lvl, cout)])

    def transformer(c, lvl, depth):
        out.append(("gn", lvl, c))
        out.extend([("attn", lvl, c)] * depth)

    ch = bo[0]
    for lvl, t in enumerate(cfg["down_block_types"]):
        for j in range(lpb):
            resnet(ch if j == 0 else bo[lvl], bo[lvl], lvl)
            if t == "CrossAttnDownBlock2D":
                transformer(bo[lvl], lvl, tl[lvl])
        ch = bo[lvl]
        if lvl < n - 1:
            out.append(("conv", lvl, bo[lvl]))  # downsampler (input at this level)
    if cfg.get("mid_block_type") == "UNetMidBlock2DCrossAttn":
        c = bo[-1]
        resnet(c, c, n - 1)
        transformer(c, n - 1, tl[-1])
        resnet(c, c, n - 1)
    rev = list(reversed(bo))
    rtl = list(reversed(tl))
    out_ch = rev[0]
    for i, t in enumerate(cfg["up_block_types"]):
        lvl = n - 1 - i
        prev, out_ch = out_ch, rev[i]
        inp = rev[min(i + 1, n - 1)]
        nl = lpb + 1
        for j in range(nl):
            skip = inp if j == nl - 1 else out_ch
            rin = prev if j == 0 else out_ch
            resnet(rin + skip, out_ch, lvl)
            if t == "CrossAttnUpBlock2D":
                transformer(out_ch, lvl, rtl[i])
        if i < n - 1:
            out.append(("conv", lvl - 1, out_ch))  # upsampler conv after the 2x upsample
    out.append(("gn", 0, bo[0]))    # conv_norm_out
    out.append(("conv", 0, bo[0]))  # conv_out
    return out, n - 1


def plan(cfg, H, W, N, split, cfg_on, mode, dsize):
    """Latent H, W. Returns the plan and the per-rank bytes of the first group's ranks."""
    n_img = 2 if cfg_on else 1
    if split and n_img == 2 and N > 1 and N % 2 == 0:
        P, B = N // 2, 1
    else:
        P, B = N, n_img
    lay, n_down = layers(cfg)
    G = cfg.get("norm_num_groups", 32)
    reg_gn = mode in ("corrected_async_gn", "stale_gn")
    deep = bands(H >> n_down, P) if P > 1 else [H >> n_down]
    dmax = max(deep)
    count = elems = 0
    b_conv = b_attn = b_gn = 0  # bytes of one slot by kind (8-byte aligned entries)
    half_sum = 0                # one halo part (one neighbour) summed over the convs
    for kind, lvl, c in lay:
        wl = W >> lvl
        if kind == "conv":
            e, nb = 2 * B * wl * c, 2 * B * wl * c * dsize
            half_sum += B * wl * c * dsize
        elif kind == "attn":
            rows = dmax << (n_down - lvl)
            e, nb = 2 * B * rows * wl * c, 2 * B * rows * wl * c * dsize
        else:
            if not reg_gn:
                continue
            e, nb = 2 * B * G, 2 * B * G * 8
        nb = (nb + 7) // 8 * 8
        count += 1
        elems += e
        if kind == "conv":
            b_conv += nb
        elif kind == "attn":
            b_attn += nb
        else:
            b_gn += nb
    ranks = []
    img = H * W * 4 * 4  # one image's noise prediction, f32, 4 channels
    for p in range(P):
        nbrs = (p > 0) + (p < P - 1) if P > 1 else 0
        f = P - 1
        before = {"halo": 2 * f * b_conv, "kv": 2 * f * b_attn, "gn": 2 * f * b_gn}
        after = {"halo": 2 * nbrs * half_sum, "kv": 2 * f * b_attn, "gn": 2 * f * b_gn}
        if mode in ("full_sync", "no_sync"):  # no asynchronous step
            before = {k: 0 for k in before}
            after = {k: 0 for k in after}
        # output gather: everything but this rank's block, received, and as much sent
        mine = B * img * (deep[p] if P > 1 else 1) // (H >> n_down if P > 1 else 1)
        others = n_img * img - mine
        ranks.append({"patch": p, "rows_deepest": deep[p], "neighbours": nbrs,
                      "before": before, "after": after,
                      "bytes_before": sum(before.values()), "bytes_after": sum(after.values()),
                      "bytes_output": 2 * others if N > 1 else 0})
    return {"P": P, "B": B, "n_down": n_down, "tensors": count, "slot_elements": elems,
            "slot_bytes": b_conv + b_attn + b_gn, "halo_part_bytes": half_sum, "ranks": ranks}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config")
    ap.add_argument("--arch", choices=["sdxl", "sd15"])
    ap.add_argument("-W", type=int, required=True, help="image width in pixels")
    ap.add_argument("-H", type=int, required=True, help="image height in pixels")
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--no-split-batch", action="store_true")
    ap.add_argument("--no-cfg", action="store_true")
    ap.add_argument("--mode", default="corrected_async_gn")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.config:
        cfg = json.load(open(a.config))
    elif a.arch:
        cfg = SDXL if a.arch == "sdxl" else SD15
    else:
        sys.exit("give --config or --arch")
    r = plan(cfg, a.H // 8, a.W // 8, a.ranks, not a.no_split_batch, not a.no_cfg, a.mode,
             2 if a.dtype == "f16" else 4)
    if a.json:
        print(json.dumps(r))
        return
    print("P=%d B=%d: %d tensors, %d elements per slot, slot %d bytes" %
          (r["P"], r["B"], r["tensors"], r["slot_elements"], r["slot_bytes"]))
    for k in r["ranks"]:
        print("  patch %d (%d rows, %d neighbours): before %d, after %d (halo %d -> %d), "
              "output %d" % (k["patch"], k["rows_deepest"], k["neighbours"], k["bytes_before"],
                             k["bytes_after"], k["before"]["halo"], k["after"]["halo"],
                             k["bytes_output"]))


if __name__ == "__main__":
    main()
