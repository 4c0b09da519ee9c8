"""Joins `dst-bench train-sparse` rows with PyTorch's dense step from the same
`make bench-train-sparse` run into results/bench/train_sparse.csv (columns model,
strategy, sparsity, batch, threads, blas_core, path, step_ms, dense_step_ms,
speedup_vs_dense, speedup_vs_torch_dense, sparse_kernel_layers: how many of the
sparse layers ran on sparse kernels, and round_trip_ns_before / _after: the two
threads' cache-line round trip measured around the case, which says whether the
machine's CPUs sat close together) and prints a markdown table.

usage: bench_train_sparse_table.py OURS.csv TORCH.csv OUT.csv"""
import csv
import sys

ours_path, torch_path, out_path = sys.argv[1:4]
torch_ms = {}
with open(torch_path) as f:
    for r in csv.DictReader(f):
        torch_ms[(r["model"], r["batch"], r["threads"])] = int(r["batch"]) / float(r["images_per_second"]) * 1000

columns = ["model", "strategy", "sparsity", "batch", "threads", "blas_core", "path", "step_ms", "dense_step_ms",
           "speedup_vs_dense", "speedup_vs_torch_dense", "sparse_kernel_layers", "round_trip_ns_before",
           "round_trip_ns_after"]
rows = []
with open(ours_path) as f:
    for r in csv.DictReader(f):
        t = torch_ms.get((r["model"], r["batch"], r["threads"]))
        r["speedup_vs_torch_dense"] = f"{t / float(r['step_ms']):.3f}" if t else ""
        rows.append({c: r.get(c, "") for c in columns})
with open(out_path + ".tmp", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
import os
os.replace(out_path + ".tmp", out_path)

cores = sorted({r["blas_core"] for r in rows})
print(f"DynamicSparse BLAS core: {', '.join(cores)}; PyTorch dense step (ms): "
      + ", ".join(f"{m} {v:.1f}" for (m, _, _), v in torch_ms.items()) + "\n")
print("| model | strategy | sparsity | path | layers on sparse kernels | step ms (amortised, ΔT=100) | our dense step ms | vs our dense | vs PyTorch dense | round trip ns |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['strategy']} | {r['sparsity']} | {r['path']} | {r['sparse_kernel_layers']} | {float(r['step_ms']):.1f} | "
          f"{float(r['dense_step_ms']):.1f} | {float(r['speedup_vs_dense']):.2f}x | "
          f"{(float(r['speedup_vs_torch_dense']) if r['speedup_vs_torch_dense'] else float('nan')):.2f}x | "
          f"{r['round_trip_ns_before']}/{r['round_trip_ns_after']} |")
