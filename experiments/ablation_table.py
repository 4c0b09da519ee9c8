"""Ablated neurons by layer type, per config over seeds (for transformer runs, where
the question is whether attention or MLP layers lose neurons).

    python3 experiments/ablation_table.py results/vit [--csv]

Reads every run folder below the given folders (config.yaml, metrics.csv,
sparsity.csv), groups runs by name without the trailing `_seed<N>`, and prints one
markdown row per group: seeds, final test accuracy (mean ± sample std), ablated
neurons at the end of training in attention layers (`.attn.` in the layer name) and in
MLP layers (`.mlp.`) as mean over seeds of the total, out of the layers' neurons, and
wall time (mean of summed epoch_seconds, minutes). Standard library only."""
import csv
import os
import re
import statistics
import sys


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_folders(paths):
    for path in paths:
        path = path.rstrip("/")
        if os.path.exists(os.path.join(path, "config.yaml")):
            yield path
            continue
        for name in sorted(os.listdir(path)):
            folder = os.path.join(path, name)
            if os.path.exists(os.path.join(folder, "config.yaml")) and os.path.exists(os.path.join(folder, "metrics.csv")):
                yield folder


def layer_type(name):
    return "attention" if ".attn." in name else "mlp" if ".mlp." in name else "other"


def summarise(folder):
    metrics = rows(os.path.join(folder, "metrics.csv"))
    layers = rows(os.path.join(folder, "sparsity.csv"))
    last = {}
    for row in layers:   # rows are in step order; keep each layer's last
        last[row["layer"]] = row
    ablated = {"attention": 0, "mlp": 0}
    neurons = {"attention": 0, "mlp": 0}
    for name, row in last.items():
        kind = layer_type(name)
        if kind in ablated:
            ablated[kind] += int(row["ablated_neurons"])
            neurons[kind] += int(row["n_out"])
    return {
        "acc": 100 * float(metrics[-1]["test_acc"]) if metrics else None,
        "minutes": sum(float(r["epoch_seconds"]) for r in metrics) / 60,
        "ablated": ablated, "neurons": neurons,
    }


def main():
    args = [a for a in sys.argv[1:] if a != "--csv"]
    as_csv = "--csv" in sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    groups = {}
    for folder in run_folders(args):
        key = re.sub(r"_seed\d+$", "", os.path.basename(folder))
        groups.setdefault(key, []).append(summarise(folder))
    header = ["config", "seeds", "final test acc (%)", "ablated attention neurons", "ablated MLP neurons",
              "wall time (min)"]
    lines = []
    for key, runs in groups.items():
        accs = [r["acc"] for r in runs if r["acc"] is not None]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        def ablated(kind):
            mean = statistics.mean(r["ablated"][kind] for r in runs)
            return f"{mean:.1f} of {runs[0]['neurons'][kind]}"
        lines.append([key, str(len(runs)), f"{statistics.mean(accs):.2f} ± {std:.2f}" if accs else "",
                      ablated("attention"), ablated("mlp"), f"{statistics.mean(r['minutes'] for r in runs):.1f}"])
    if as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows(lines)
    else:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
