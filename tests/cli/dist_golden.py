#!/usr/bin/env python3
"""The DistriFusion goldens through the command line (standard library only).

dist_golden.py BIN MPIEXEC GOLDEN [FILTER]
    For every configuration of GOLDEN/distrifusion/manifest.json (or those whose name contains
    one of the comma-separated substrings of FILTER; $DF_GOLDEN overrides GOLDEN): `mpiexec -n N distrifuse` on the tiny SDXL
    fixture with the golden's prompt, 512x512, 10 steps, guidance 5, the golden noise as
    --init-latent, --comm-checkpoint 20 and --gn-compat original; the final latents
    (--save-latent) must match out.<config>.latents within rel-L2 1e-4.
Exit 0 pass, 1 fail, 77 skip (no golden data, no mpiexec).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_check import tensor, write_st  # noqa: E402

TOL = 1e-4


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: dist_golden.py BIN MPIEXEC GOLDEN [FILTER]")
    binary, mpiexec, golden = sys.argv[1:4]
    golden = os.environ.get("DF_GOLDEN") or golden
    filt = [f for f in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if f]
    gdir = os.path.join(golden, "distrifusion")
    if not os.path.isfile(os.path.join(gdir, "manifest.json")):
        print("SKIP: no DistriFusion golden data at %s" % gdir)
        sys.exit(77)
    if not shutil.which(mpiexec):
        print("SKIP: no mpiexec (%s)" % mpiexec)
        sys.exit(77)
    man = json.load(open(os.path.join(gdir, "manifest.json")))
    cp = man["common_params"]
    model = os.path.join(golden, man["fixture"])
    configs = [c for c in man["configs"] if not filt or any(f in c["name"] for f in filt)]
    if not configs:
        sys.exit("FAIL: no configuration matches %s" % filt)
    tmp = tempfile.mkdtemp(prefix="df-dist-golden.")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    try:
        shape, noise = tensor(os.path.join(gdir, "inputs_and_single_device.safetensors"),
                              "in.noise")
        noise_path = os.path.join(tmp, "noise.safetensors")
        write_st(noise_path, "latents", shape, noise)
        finals = os.path.join(gdir, "final_latents.safetensors")
        failed = []
        for c in configs:
            k = c["config"]
            lat = os.path.join(tmp, "lat.safetensors")
            args = [mpiexec, "--oversubscribe", "-n", str(k["world_size"]), binary,
                    "-m", model, "-p", cp["prompt"], "-W", str(cp["width"]),
                    "-H", str(cp["height"]), "--steps", str(cp["num_inference_steps"]),
                    "--cfg-scale", str(cp["guidance_scale"]),
                    "--sampling-method", k["scheduler"], "--init-latent", noise_path,
                    "--save-latent", lat, "-o", os.path.join(tmp, "img.png"), "-q", "-t", "1",
                    "--parallelism", k["parallelism"], "--sync-mode", k["mode"],
                    "--warmup-steps", str(k["warmup_steps"]),
                    "--split-scheme", k["split_scheme"],
                    "--comm-checkpoint", str(cp["comm_checkpoint"]), "--gn-compat", "original"]
            if not k["split_batch"]:
                args.append("--no-split-batch")
            t0 = time.time()
            r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=600)
            if r.returncode != 0:
                print("  %-48s exit %d: %s" % (c["name"], r.returncode, r.stderr.strip()[-400:]))
                failed.append(c["name"])
                continue
            _, got = tensor(lat, "latents")
            _, want = tensor(finals, "out.%s.latents" % c["name"])
            den = sum(y * y for y in want)
            rel = math.sqrt(sum((x - y) ** 2 for x, y in zip(got, want)) / den)
            ok = len(got) == len(want) and rel <= TOL
            print("  %-48s rel-L2 %.3e  %5.1f s%s" % (c["name"], rel, time.time() - t0,
                                                     "" if ok else "  FAIL"))
            if not ok:
                failed.append(c["name"])
        print("%d configurations, %d failed" % (len(configs), len(failed)))
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
