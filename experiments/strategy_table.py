"""Prints a markdown table of run folders: strategy, sparsity, final and best test
accuracy, realised sparsity, ablated neurons and wall time, from each folder's
config.yaml and metrics.csv (standard library only)."""
import csv
import os
import re
import sys


def config_value(text, section, key):
    block = re.search(rf"^{section}:\n((?:[ ].*\n?)*)", text, re.M)
    if not block:
        return ""
    m = re.search(rf"^\s+{key}:\s*(.+)$", block.group(1), re.M)
    return m.group(1).strip() if m else ""


print("| run | strategy | target sparsity | epochs | final test acc | best test acc | realised sparsity | ablated neurons | wall time |")
print("|---|---|---|---|---|---|---|---|---|")
for folder in sys.argv[1:]:
    folder = folder.rstrip("/")
    try:
        with open(os.path.join(folder, "config.yaml")) as f:
            cfg = f.read()
        with open(os.path.join(folder, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        print(f"| {os.path.basename(folder)} | (unreadable: {e.strerror}) |||||||")
        continue
    if not rows:
        continue
    strategy = config_value(cfg, "sparsity", "strategy")
    target = float(config_value(cfg, "sparsity", "sparsity") or 0) if strategy != "dense" else 0.0
    if config_value(cfg, "sparsity", "ablation") == "false" and strategy == "srigl":
        strategy += " (no ablation)"
    last = rows[-1]
    best = max(float(r["test_acc"]) for r in rows)
    wall = sum(float(r["epoch_seconds"]) for r in rows)
    print(f"| {os.path.basename(folder)} | {strategy} | {target:.2f} | {last['epoch']} | "
          f"{100 * float(last['test_acc']):.2f}% | {100 * best:.2f}% | {float(last['sparsity']):.4f} | "
          f"{last['ablated_neurons']} | {wall / 60:.1f} min |")
