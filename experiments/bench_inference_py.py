"""External references for `make bench`: scipy CSR, PyTorch CSR and PyTorch dense on
layers of the same shapes, sparsities (constant fan-in masks), batches and threads as
`dst-bench inference`. Appends rows with kernels scipy_csr, torch_csr, torch_dense to
the CSV. Benchmark-only (the venv under .build-venv/)."""
import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
import torch


def median_time(fn, seconds):
    for _ in range(3):
        fn()
    t = time.perf_counter(); fn(); once = max(time.perf_counter() - t, 1e-7)
    reps = max(5, min(1000, int(seconds / once)))
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return sorted(times)[reps // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="768x3072,3072x768,4096x4096")
    p.add_argument("--sparsities", default="0.8,0.9,0.95,0.99")
    p.add_argument("--batches", default="1,16,256")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seconds", type=float, default=0.2)
    p.add_argument("--csv", default="results/bench/inference.csv")
    a = p.parse_args()
    rng = np.random.default_rng(7)
    rows = []
    for shape in a.shapes.split(","):
        n_out, n_in = map(int, shape.split("x"))
        for s in map(float, a.sparsities.split(",")):
            k = max(1, int(n_out * n_in * (1 - s)) // n_out)
            w = np.zeros((n_out, n_in), dtype=np.float32)
            for r in range(n_out):
                w[r, rng.choice(n_in, k, replace=False)] = rng.standard_normal(k).astype(np.float32)
            w_csr = sp.csr_matrix(w)
            tw = torch.from_numpy(w)
            tw_csr = tw.to_sparse_csr()
            for b in map(int, a.batches.split(",")):
                x = rng.standard_normal((n_in, b)).astype(np.float32)
                tx = torch.from_numpy(x)
                ref = w.astype(np.float64) @ x.astype(np.float64)
                scale = max(np.abs(ref).max(), 1e-12)
                for t in map(int, a.threads.split(",")):
                    torch.set_num_threads(t)
                    kernels = {
                        "scipy_csr": lambda: w_csr @ x,
                        "torch_csr": lambda: torch.sparse.mm(tw_csr, tx) if b > 1 else torch.mv(tw_csr, tx[:, 0]),
                        "torch_dense": lambda: tw @ tx if b > 1 else torch.mv(tw, tx[:, 0]),
                    }
                    for name, fn in kernels.items():
                        out = fn()
                        out = out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
                        err = np.abs(out.reshape(n_out, b) - ref).max() / scale
                        us = median_time(fn, a.seconds) * 1e6
                        core = "scipy" if name.startswith("scipy") else "torch:" + torch.backends.cpu.get_cpu_capability()
                        line = f"{n_out},{n_in},{s:.2f},{b},{t},{name},{us:.2f},{err:.2e},{core},0"
                        print(line)
                        rows.append(line)
    with open(a.csv, "a") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
