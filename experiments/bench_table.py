"""Joins training-throughput CSVs (framework,model,batch,threads,images_per_second,
blas_core,blas_fallback), one file per framework and repeat, into a markdown table:
each framework's median throughput over the repeats and the median, min and max of
the per-repeat ratio DynamicSparse / PyTorch (files are paired in the order given,
so repeat r of one framework meets repeat r of the other)."""
import csv
import statistics
import sys
from collections import OrderedDict

rates = OrderedDict()   # (model, batch, threads) -> framework -> [images/s per repeat]
cores, fallback = set(), set()
for path in sys.argv[1:]:
    with open(path) as f:
        for r in csv.DictReader(f):
            key = (r["model"], r["batch"], r["threads"])
            rates.setdefault(key, {}).setdefault(r["framework"], []).append(float(r["images_per_second"]))
            if r["framework"] == "dynamicsparse":
                cores.add(r.get("blas_core", "unrecorded"))
                if r.get("blas_fallback") == "1":
                    fallback.add(r["blas_core"])

if fallback:
    print(f"**Warning: DynamicSparse ran on OpenBLAS's {', '.join(sorted(fallback))} core, weaker than this CPU "
          "supports; its figures are far below the machine's speed.**\n")
print(f"DynamicSparse BLAS core: {', '.join(sorted(cores)) or 'n/a'}\n")
print("| model | batch | threads | repeats | DynamicSparse img/s | PyTorch img/s | ratio (median) | ratio min–max |")
print("|---|---|---|---|---|---|---|---|")
for (model, batch, threads), v in rates.items():
    ours, theirs = v.get("dynamicsparse", []), v.get("pytorch", [])
    ratios = [o / t for o, t in zip(ours, theirs)]
    fmt = lambda xs: f"{statistics.median(xs):,.0f}" if xs else "n/a"
    median = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}x" if ratios else "n/a"
    print(f"| {model} | {batch} | {threads} | {len(ratios)} | {fmt(ours)} | {fmt(theirs)} | {median} | {spread} |")
