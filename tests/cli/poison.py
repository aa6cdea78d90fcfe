#!/usr/bin/env python3
"""poison.py FILE.safetensors TENSOR [nan|inf]: overwrites every value of TENSOR in place with
NaN (or +Inf); F32, F16 and BF16 (a model whose activations become non-finite)."""
import json
import struct
import sys

path, name = sys.argv[1], sys.argv[2]
kind = sys.argv[3] if len(sys.argv) > 3 else "nan"
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    t = h[name]
    b, e = t["data_offsets"]
    pat = {("F32", "nan"): b"\x00\x00\xc0\x7f", ("F32", "inf"): b"\x00\x00\x80\x7f",
           ("F16", "nan"): b"\x00\x7e", ("F16", "inf"): b"\x00\x7c",
           ("BF16", "nan"): b"\xc0\x7f", ("BF16", "inf"): b"\x80\x7f"}[(t["dtype"], kind)]
    f.seek(8 + n + b)
    f.write(pat * ((e - b) // len(pat)))
