#!/usr/bin/env python3
"""Golden helpers for the CLI tests (standard library only).

golden_check.py extract GOLDEN.safetensors TENSOR OUT.safetensors
    writes TENSOR (F32) as the single tensor "latents" of OUT (for --init-latent).
golden_check.py relcmp A.safetensors B.safetensors TOL
    rel-L2 of the "latents" tensors of B against A <= TOL.
golden_check.py compare GOLDEN.safetensors LATENTS.safetensors IMAGE.png
    LATENTS ("latents", from --save-latent) vs out.latents: rel-L2 <= 1e-4; IMAGE vs out.image
    mapped like diffusers (clamp(x/2+0.5, 0, 1) in f32, (x*255).round()): +-1 on >= 99% of the
    values.
"""
import array
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from png_check import read_png  # noqa: E402


def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return header, data[8 + n:]


def tensor(path, name):
    header, body = read_st(path)
    t = header[name]
    if t["dtype"] != "F32":
        raise ValueError("%s: %s is %s" % (path, name, t["dtype"]))
    a = array.array("f")
    a.frombytes(body[t["data_offsets"][0]:t["data_offsets"][1]])
    return t["shape"], a


def write_st(path, name, shape, a):
    raw = a.tobytes()
    h = json.dumps({"__metadata__": {"format": "pt"},
                    name: {"dtype": "F32", "shape": shape, "data_offsets": [0, len(raw)]}},
                   separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + raw)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    if sys.argv[1] == "relcmp":  # relcmp A.safetensors B.safetensors TOL: "latents" tensors
        _, a = tensor(sys.argv[2], "latents")
        _, b = tensor(sys.argv[3], "latents")
        rel = math.sqrt(sum((x - y) ** 2 for x, y in zip(b, a)) / sum(y * y for y in a))
        print("rel-L2 %.3e" % rel)
        if len(a) != len(b) or not rel <= float(sys.argv[4]):
            sys.exit("latents differ (rel-L2 %.3e)" % rel)
        return
    if sys.argv[1] == "extract":
        shape, a = tensor(sys.argv[2], sys.argv[3])
        write_st(sys.argv[4], "latents", shape, a)
        return
    golden, lat, png = sys.argv[2:5]
    gs, g = tensor(golden, "out.latents")
    ls, l = tensor(lat, "latents")
    if gs != ls:
        sys.exit("latent shape %s, expected %s" % (ls, gs))
    num = sum((x - y) ** 2 for x, y in zip(l, g))
    den = sum(y * y for y in g)
    rel = math.sqrt(num / den)
    print("latents rel-L2 %.3e" % rel)
    if not rel <= 1e-4:
        sys.exit("latents differ from the golden")
    ishape, im = tensor(golden, "out.image")
    _, C, H, W = ishape
    w, h, rgb, _ = read_png(png)
    if (w, h) != (W, H):
        sys.exit("image %dx%d, expected %dx%d" % (w, h, W, H))
    within = exact = 0
    for c in range(C):
        for y in range(H):
            for x in range(W):
                v = f32(im[(c * H + y) * W + x] / 2.0 + 0.5)
                v = min(max(v, 0.0), 1.0)
                want = round(f32(v * 255.0))
                d = abs(rgb[(y * W + x) * 3 + c] - want)
                within += d <= 1
                exact += d == 0
    total = C * H * W
    print("image: %.4f%% exact, %.4f%% within 1" % (100.0 * exact / total, 100.0 * within / total))
    if within < 0.99 * total:
        sys.exit("image differs from the golden")


if __name__ == "__main__":
    main()
