#!/usr/bin/python3
"""tools/convert_metric_weights.py on checkpoints laid out like the real ones.

The golden random weights (../shared/golden/metrics) are saved as a full pytorch-fid Inception3
state dict (with fc.* and num_batches_tracked), a torchvision AlexNet state dict (with
classifier.*) and an lpips lin file (lpips-package names); the converter must give back exactly
the golden tensors (--dtype f16), distrifuse-metrics must reproduce the golden LPIPS / FID with the
converted files (--dtype f32), and a checkpoint with a missing tensor must be refused.
Exit 77 without python3-torch or without the goldens.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:
    print("SKIP: python3-torch / numpy not installed (apt-get install python3-torch)")
    sys.exit(77)

SRC = os.environ.get("DF_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
GOLD = os.environ.get("DF_GOLDEN", os.path.join(SRC, "..", "shared", "golden"))
GOLD = os.path.join(GOLD, "metrics")
BIN = os.environ.get("DF_METRICS_BIN")
CONV = os.path.join(SRC, "tools", "convert_metric_weights.py")
if not os.path.exists(os.path.join(GOLD, "README.md")):
    print(f"SKIP: metrics goldens not found at {GOLD}")
    sys.exit(77)

failures = 0


def expect(cond, msg):
    global failures
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures += 1


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    hdr.pop("__metadata__", None)
    dt = {"F16": np.float16, "F32": np.float32}
    out = {}
    for k, v in hdr.items():
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out


def run(args, **kw):
    print("$", " ".join(args))
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r


inc = read_st(os.path.join(GOLD, "fid_inception_random.safetensors"))
lp = read_st(os.path.join(GOLD, "lpips_alex_random.safetensors"))
g = torch.Generator().manual_seed(0)

with tempfile.TemporaryDirectory() as tmp:
    # pytorch-fid checkpoint: + fc, + num_batches_tracked
    sd = {k: torch.from_numpy(v.astype(np.float32)) for k, v in inc.items()}
    for k in list(sd):
        if k.endswith(".bn.running_var"):
            sd[k[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    sd["fc.weight"] = torch.randn(1008, 2048, generator=g)
    sd["fc.bias"] = torch.randn(1008, generator=g)
    torch.save(sd, os.path.join(tmp, "pt_inception-2015-12-05-test.pth"))
    # torchvision AlexNet + lpips lin file
    tv = {}
    for k, v in lp.items():
        if k.startswith("net.net.slice"):
            idx = k.split(".")[3]
            tv[f"features.{idx}.{k.split('.')[-1]}"] = torch.from_numpy(v.astype(np.float32))
    tv["classifier.1.weight"] = torch.randn(16, 9216, generator=g)
    tv["classifier.1.bias"] = torch.randn(16, generator=g)
    torch.save(tv, os.path.join(tmp, "alexnet-owt-test.pth"))
    lin = {f"lin{k}.model.1.weight": torch.from_numpy(lp[f"net.lin{k}.model.1.weight"].astype(np.float32))
           for k in range(5)}
    torch.save(lin, os.path.join(tmp, "alex.pth"))

    for dtype in ("f16", "f32"):
        fo, lo = os.path.join(tmp, f"fid_{dtype}.safetensors"), os.path.join(tmp, f"lpips_{dtype}.safetensors")
        r = run(["/usr/bin/python3", CONV, "fid", "--pth", os.path.join(tmp, "pt_inception-2015-12-05-test.pth"),
                 "-o", fo, "--dtype", dtype])
        expect(r.returncode == 0, f"fid conversion ({dtype})")
        r = run(["/usr/bin/python3", CONV, "lpips", "--lin", os.path.join(tmp, "alex.pth"), "--alexnet",
                 os.path.join(tmp, "alexnet-owt-test.pth"), "-o", lo, "--dtype", dtype])
        expect(r.returncode == 0, f"lpips conversion ({dtype})")
        for path, ref, what in ((fo, inc, "fid"), (lo, lp, "lpips")):
            if not os.path.exists(path):
                expect(False, f"{path} written")
                continue
            got = read_st(path)
            expect(set(got) == set(ref), f"{what} {dtype}: the {len(ref)} golden names, nothing else")
            same = all(k in got and got[k].shape == ref[k].shape and
                       np.array_equal(got[k].astype(np.float32), ref[k].astype(np.float32)) for k in ref)
            expect(same, f"{what} {dtype}: every tensor equals the golden one")
            if dtype == "f16":
                expect(all(got[k].dtype == np.float16 for k in got), f"{what}: stored as F16")

    # the program on the converted f32 files reproduces the golden values of the 'sizes' case
    if BIN:
        m = json.load(open(os.path.join(GOLD, "manifest.json")))
        case = next(c for c in m["cases"] if c.get("kind") == "compute_metrics" and c.get("case") == "sizes")
        r = run([BIN, "--input-root0", os.path.join(GOLD, "sizes_a"), "--input-root1", os.path.join(GOLD, "sizes_b"),
                 "--lpips-weights", os.path.join(tmp, "lpips_f32.safetensors"),
                 "--fid-weights", os.path.join(tmp, "fid_f32.safetensors"), "--json", "-t", "2"])
        expect(r.returncode == 0, "distrifuse-metrics with the converted weights")
        if r.returncode == 0:
            j = json.loads(r.stdout.strip().splitlines()[-1])
            v = case["values"]
            for got, want in zip(j["lpips_per_image"], v["lpips"]):
                expect(abs(got - want) <= 1e-6 + 1e-5 * abs(want), f"LPIPS {got:.9g} vs {want:.9g}")
            ft = v["fid_terms"]
            tol = 5e-6 * (ft["trace_sigma_a"] + ft["trace_sigma_b"]) + 1e-5 * v["fid"]
            expect(abs(j["fid"] - v["fid"]) <= tol, f"FID {j['fid']:.9g} vs {v['fid']:.9g} (tol {tol:.3g})")

    # a checkpoint without one tensor is refused, naming it, and nothing is written
    del sd["Mixed_6c.branch7x7_2.bn.running_mean"]
    torch.save(sd, os.path.join(tmp, "broken.pth"))
    out = os.path.join(tmp, "broken.safetensors")
    r = run(["/usr/bin/python3", CONV, "fid", "--pth", os.path.join(tmp, "broken.pth"), "-o", out])
    expect(r.returncode != 0 and "Mixed_6c.branch7x7_2.bn.running_mean" in r.stderr, "missing tensor refused")
    expect(not os.path.exists(out), "no output for a refused checkpoint")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
