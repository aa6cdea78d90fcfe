#!/usr/bin/env python3
"""latent_diff.py REF.safetensors OUT.safetensors MAX_REL_L2

Relative L2 distance ||out - ref|| / ||ref|| of the F32 tensor 'latents' written by
`distrifuse --save-latent`; exit 0 when it is <= MAX_REL_L2 (and finite), 1 otherwise.
"""
import array
import json
import math
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    t = head["latents"]
    if t["dtype"] != "F32":
        sys.exit("latent_diff: %s: tensor 'latents' is %s, expected F32" % (path, t["dtype"]))
    b, e = t["data_offsets"]
    a = array.array("f")
    a.frombytes(raw[8 + n + b:8 + n + e])
    if sys.byteorder != "little":
        a.byteswap()
    return t["shape"], a


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sr, ref = load(sys.argv[1])
    so, out = load(sys.argv[2])
    if sr != so:
        print("latent_diff: shapes differ: %s vs %s" % (sr, so))
        return 1
    num = sum((x - y) ** 2 for x, y in zip(out, ref))
    den = sum(x * x for x in ref)
    rel = math.sqrt(num / den) if den > 0 else float("inf")
    lim = float(sys.argv[3])
    ok = math.isfinite(rel) and rel <= lim and den > 0
    print("latent_diff: rel-L2 %.3e (limit %.1e, %d values): %s"
          % (rel, lim, len(ref), "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
