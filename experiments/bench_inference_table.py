"""Markdown table from results/bench/inference.csv: per shape, sparsity, batch and
thread count, each kernel's median time and the condensed kernel's speed-up over it."""
import csv
import sys
from collections import OrderedDict

path = sys.argv[1] if len(sys.argv) > 1 else "results/bench/inference.csv"
cases = OrderedDict()
cores = set()
with open(path) as f:
    for r in csv.DictReader(f):
        if r.get("blas_fallback") == "1":
            cores.add(r["blas_core"])
        key = (r["out_features"], r["in_features"], r["sparsity"], r["batch"], r["threads"])
        cases.setdefault(key, {})[r["kernel"]] = float(r["median_us"])
if cores:
    print(f"**Warning: the dense kernels ran on OpenBLAS's {', '.join(sorted(cores))} core, weaker than this CPU "
          "supports; every ratio against dense is inflated.**\n")
kernels = ["dense", "condensed", "csr", "structured", "scipy_csr", "torch_csr", "torch_dense"]
print("| layer (out×in) | sparsity | batch | threads | " + " | ".join(f"{k} µs" for k in kernels)
      + " | condensed vs dense | vs csr | vs scipy | vs torch csr |")
print("|" + "---|" * (4 + len(kernels) + 4))
for (o, i, s, b, t), v in cases.items():
    c = v.get("condensed")
    ratio = lambda k: f"{v[k] / c:.1f}x" if c and k in v else "n/a"
    cells = [f"{v[k]:.0f}" if k in v else "n/a" for k in kernels]
    print(f"| {o}×{i} | {s} | {b} | {t} | " + " | ".join(cells)
          + f" | {ratio('dense')} | {ratio('csr')} | {ratio('scipy_csr')} | {ratio('torch_csr')} |")
