#!/usr/bin/python3
"""Convert the real metric-network checkpoints into the safetensors files distrifuse-metrics reads.

Runs with Debian's /usr/bin/python3 and python3-torch (apt-get install python3-torch); no network.

  # FID: pytorch-fid's port of the TF Inception graph clean-fid uses (FID Inception-v3)
  tools/convert_metric_weights.py fid --pth pt_inception-2015-12-05-6726825d.pth \\
      -o fid_inception.safetensors

  # LPIPS (AlexNet): the linear heads (lpips' weights/v0.1/alex.pth, or the identical copy in
  # torchmetrics) and torchvision's ImageNet AlexNet trunk (alexnet-owt-7be5be79.pth)
  tools/convert_metric_weights.py lpips --lin alex.pth --alexnet alexnet-owt-7be5be79.pth \\
      -o lpips_alex.safetensors

Options: --dtype f32 (default) or f16. Every expected tensor is checked (name and shape) before
anything is written; the output is written to a temporary name and renamed.

Output names (what distrifuse-metrics expects):
  fid:   pytorch-fid / torchvision Inception3 names, e.g. Conv2d_1a_3x3.conv.weight,
         Mixed_7c.branch_pool.bn.running_var (94 conv blocks x conv.weight + 4 BatchNorm tensors);
         fc.*, AuxLogits.* and *.num_batches_tracked are not needed for pool3 and are dropped.
  lpips: torchmetrics' LPIPS names: net.net.slice{1..5}.{0,3,6,8,10}.{weight,bias} taken from
         torchvision features.{0,3,6,8,10}.*, and net.lin{0..4}.model.1.weight from the lin file
         (lin{k}.model.1.weight in the lpips package).
"""
import argparse
import json
import os
import struct
import sys

try:
    import torch
except ImportError:  # pragma: no cover - message for users without python3-torch
    sys.exit("convert_metric_weights: needs PyTorch: apt-get install python3-torch")


# ----------------------------------------------------------------------------------- architecture
def _basic(name, cout, cin, kh, kw):
    return name, (cout, cin, kh, kw)


def inception_blocks():
    """(name, (cout, cin, kh, kw)) of the 94 conv+BatchNorm blocks of the FID Inception-v3."""
    out = [_basic("Conv2d_1a_3x3", 32, 3, 3, 3), _basic("Conv2d_2a_3x3", 32, 32, 3, 3),
           _basic("Conv2d_2b_3x3", 64, 32, 3, 3), _basic("Conv2d_3b_1x1", 80, 64, 1, 1),
           _basic("Conv2d_4a_3x3", 192, 80, 3, 3)]
    # InceptionA: (block, input channels, pool projection)
    for blk, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        spec = [("branch1x1", 64, cin, 1, 1), ("branch5x5_1", 48, cin, 1, 1), ("branch5x5_2", 64, 48, 5, 5),
                ("branch3x3dbl_1", 64, cin, 1, 1), ("branch3x3dbl_2", 96, 64, 3, 3),
                ("branch3x3dbl_3", 96, 96, 3, 3), ("branch_pool", pool, cin, 1, 1)]
        out += [_basic(f"{blk}.{b}", co, ci, kh, kw) for b, co, ci, kh, kw in spec]
    # InceptionB
    out += [_basic("Mixed_6a.branch3x3", 384, 288, 3, 3), _basic("Mixed_6a.branch3x3dbl_1", 64, 288, 1, 1),
            _basic("Mixed_6a.branch3x3dbl_2", 96, 64, 3, 3), _basic("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
    # InceptionC: (block, channels of the 7x7 branches)
    for blk, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        spec = [("branch1x1", 192, 768, 1, 1), ("branch7x7_1", c7, 768, 1, 1), ("branch7x7_2", c7, c7, 1, 7),
                ("branch7x7_3", 192, c7, 7, 1), ("branch7x7dbl_1", c7, 768, 1, 1),
                ("branch7x7dbl_2", c7, c7, 7, 1), ("branch7x7dbl_3", c7, c7, 1, 7),
                ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", 192, c7, 1, 7),
                ("branch_pool", 192, 768, 1, 1)]
        out += [_basic(f"{blk}.{b}", co, ci, kh, kw) for b, co, ci, kh, kw in spec]
    # InceptionD
    spec = [("branch3x3_1", 192, 768, 1, 1), ("branch3x3_2", 320, 192, 3, 3), ("branch7x7x3_1", 192, 768, 1, 1),
            ("branch7x7x3_2", 192, 192, 1, 7), ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)]
    out += [_basic(f"Mixed_7a.{b}", co, ci, kh, kw) for b, co, ci, kh, kw in spec]
    # InceptionE
    for blk, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        spec = [("branch1x1", 320, cin, 1, 1), ("branch3x3_1", 384, cin, 1, 1), ("branch3x3_2a", 384, 384, 1, 3),
                ("branch3x3_2b", 384, 384, 3, 1), ("branch3x3dbl_1", 448, cin, 1, 1),
                ("branch3x3dbl_2", 384, 448, 3, 3), ("branch3x3dbl_3a", 384, 384, 1, 3),
                ("branch3x3dbl_3b", 384, 384, 3, 1), ("branch_pool", 192, cin, 1, 1)]
        out += [_basic(f"{blk}.{b}", co, ci, kh, kw) for b, co, ci, kh, kw in spec]
    return out


def inception_shapes():
    shapes = {}
    for name, w in inception_blocks():
        shapes[f"{name}.conv.weight"] = w
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{p}"] = (w[0],)
    return shapes


# torchvision AlexNet `features` index of each conv, its shape, and the LPIPS slice holding it
ALEX = [(0, (64, 3, 11, 11)), (3, (192, 64, 5, 5)), (6, (384, 192, 3, 3)), (8, (256, 384, 3, 3)),
        (10, (256, 256, 3, 3))]


def lpips_shapes():
    shapes = {}
    for s, (idx, w) in enumerate(ALEX, start=1):
        shapes[f"net.net.slice{s}.{idx}.weight"] = w
        shapes[f"net.net.slice{s}.{idx}.bias"] = (w[0],)
        shapes[f"net.lin{s - 1}.model.1.weight"] = (1, w[0], 1, 1)
    return shapes


# ------------------------------------------------------------------------------------------- I/O
def load_state_dict(path):
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # older torch without weights_only
        sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        sys.exit(f"convert_metric_weights: {path}: not a state dict ({type(sd).__name__})")
    # checkpoints saved from DataParallel carry a "module." prefix
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


_ST_DTYPE = {torch.float32: "F32", torch.float16: "F16"}


def write_safetensors(path, tensors, meta):
    """tensors: name -> contiguous float tensor. Official layout, header padded to 8 bytes."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes()  # little-endian on every platform Debian builds torch for
        header[name] = {"dtype": _ST_DTYPE[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check(out, shapes, what):
    problems = []
    for name, shape in shapes.items():
        if name not in out:
            problems.append(f"missing {name}")
        elif tuple(out[name].shape) != tuple(shape):
            problems.append(f"{name} has shape {list(out[name].shape)}, expected {list(shape)}")
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        sys.exit(f"convert_metric_weights: {what}: " + "; ".join(problems[:8]) + more)


def cast(tensors, dtype):
    dt = {"f32": torch.float32, "f16": torch.float16}[dtype]
    return {k: v.detach().to(torch.float32).to(dt) for k, v in tensors.items()}


# ------------------------------------------------------------------------------------- commands
def convert_fid(pth, dtype):
    sd = load_state_dict(pth)
    shapes = inception_shapes()
    check(sd, shapes, pth)
    unused = [k for k in sd if k not in shapes and not (k.startswith("fc.") or k.startswith("AuxLogits.")
                                                        or k.endswith("num_batches_tracked"))]
    if unused:
        print(f"note: ignoring {len(unused)} unexpected tensors, e.g. {unused[:3]}", file=sys.stderr)
    return cast({k: sd[k] for k in shapes}, dtype)


def convert_lpips(lin_pth, alexnet_pth, dtype):
    lin, tv = load_state_dict(lin_pth), load_state_dict(alexnet_pth)
    out = {}
    for s, (idx, _) in enumerate(ALEX, start=1):
        for p in ("weight", "bias"):
            src = f"features.{idx}.{p}"
            if src not in tv:
                sys.exit(f"convert_metric_weights: {alexnet_pth}: no {src} (not a torchvision AlexNet?)")
            out[f"net.net.slice{s}.{idx}.{p}"] = tv[src]
        k = s - 1
        for src in (f"lin{k}.model.1.weight", f"net.lin{k}.model.1.weight"):
            if src in lin:
                out[f"net.lin{k}.model.1.weight"] = lin[src]
                break
        else:
            sys.exit(f"convert_metric_weights: {lin_pth}: no lin{k}.model.1.weight (not lpips' alex.pth?)")
    check(out, lpips_shapes(), "lpips")
    return cast(out, dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fid", help="FID Inception-v3 from pytorch-fid's pt_inception-2015-12-05-*.pth")
    f.add_argument("--pth", required=True)
    l = sub.add_parser("lpips", help="LPIPS AlexNet from lpips' alex.pth + torchvision's AlexNet")
    l.add_argument("--lin", required=True)
    l.add_argument("--alexnet", required=True)
    for p in (f, l):
        p.add_argument("-o", "--out", required=True)
        p.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    a = ap.parse_args(argv)
    if a.cmd == "fid":
        tensors = convert_fid(a.pth, a.dtype)
        meta = {"format": "pt", "model": "FID Inception-v3 (pytorch-fid pt_inception-2015-12-05)",
                "source": os.path.basename(a.pth)}
    else:
        tensors = convert_lpips(a.lin, a.alexnet, a.dtype)
        meta = {"format": "pt", "model": "LPIPS AlexNet (torchmetrics names)",
                "source": f"{os.path.basename(a.lin)} + {os.path.basename(a.alexnet)}"}
    write_safetensors(a.out, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out}: {len(tensors)} tensors, {n} parameters ({a.dtype})")


if __name__ == "__main__":
    main()
