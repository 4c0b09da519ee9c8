"""Joins benchmark CSVs (framework,model,batch,threads,images_per_second) into a
markdown table with the ratio of DynamicSparse to PyTorch."""
import csv
import sys

rows = {}
for path in sys.argv[1:]:
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.setdefault((r["model"], r["batch"], r["threads"]), {})[r["framework"]] = float(r["images_per_second"])

print("| model | batch | threads | DynamicSparse img/s | PyTorch img/s | ratio |")
print("|---|---|---|---|---|---|")
for (model, batch, threads), v in rows.items():
    ours, theirs = v.get("dynamicsparse"), v.get("pytorch")
    ratio = f"{ours / theirs:.2f}x" if ours and theirs else "n/a"
    fmt = lambda x: f"{x:,.0f}" if x else "n/a"
    print(f"| {model} | {batch} | {threads} | {fmt(ours)} | {fmt(theirs)} | {ratio} |")
