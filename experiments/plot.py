"""Figures from run folders (make plot RESULTS=...): test accuracy vs sparsity per
strategy with error bars over seeds, test accuracy vs epoch, and for SRigL runs the
fan-in and ablated neurons of every layer over training steps. Needs pandas and
matplotlib (make plot installs them in a venv under .build-venv/)."""
import argparse
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def config_value(text, section, key):
    block = re.search(rf"^{section}:\n((?:[ ].*\n?)*)", text, re.M)
    m = block and re.search(rf"^\s+{key}:\s*(.+)$", block.group(1), re.M)
    return m.group(1).strip() if m else ""


def load_runs(paths):
    runs = []
    for path in paths:
        path = path.rstrip("/")
        folders = [path] if os.path.exists(os.path.join(path, "config.yaml")) else sorted(
            os.path.join(path, d) for d in os.listdir(path) if os.path.exists(os.path.join(path, d, "config.yaml")))
        for folder in folders:
            with open(os.path.join(folder, "config.yaml")) as f:
                cfg = f.read()
            metrics_path = os.path.join(folder, "metrics.csv")
            if not os.path.exists(metrics_path):
                continue
            metrics = pd.read_csv(metrics_path)
            epochs = int(config_value(cfg, "training", "epochs") or 0)
            strategy = config_value(cfg, "sparsity", "strategy")
            if strategy == "srigl" and config_value(cfg, "sparsity", "ablation") == "false":
                strategy = "srigl (no ablation)"
            sparsity = 0.0 if strategy == "dense" else float(config_value(cfg, "sparsity", "sparsity") or 0)
            layers_path = os.path.join(folder, "sparsity.csv")
            runs.append({
                "folder": folder, "name": os.path.basename(folder), "strategy": strategy, "sparsity": sparsity,
                "seed": re.search(r"^seed:\s*(\S+)", cfg, re.M).group(1),
                "finished": len(metrics) >= epochs, "metrics": metrics,
                "layers": pd.read_csv(layers_path) if os.path.exists(layers_path) else None,
            })
    return runs


def save(fig, path):
    """Writes `fig` as a small PNG and closes it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def accuracy_vs_sparsity(runs, out):
    rows = [(r["strategy"], r["sparsity"], 100 * r["metrics"]["test_acc"].iloc[-1]) for r in runs if r["finished"]]
    if not rows:
        return None
    df = pd.DataFrame(rows, columns=["strategy", "sparsity", "acc"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, g in df.groupby("strategy"):
        s = g.groupby("sparsity")["acc"].agg(["mean", "std", "count"]).reset_index().fillna(0)
        ax.errorbar(s["sparsity"], s["mean"], yerr=s["std"], marker="o", capsize=3, label=f"{strategy}")
    ax.set_xlabel("sparsity")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title("Test accuracy vs sparsity (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    path = os.path.join(out, "accuracy_vs_sparsity.png")
    return save(fig, path)


def accuracy_vs_epoch(runs, out):
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        m = r["metrics"]
        ax.plot(m["epoch"], 100 * m["test_acc"], label=r["name"], alpha=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs epoch")
    ax.grid(alpha=0.3)
    if len(runs) <= 12:
        ax.legend(fontsize=6)
    path = os.path.join(out, "accuracy_vs_epoch.png")
    return save(fig, path)


def srigl_layers(runs, out):
    paths = []
    for r in runs:
        if not r["strategy"].startswith("srigl") or r["layers"] is None:
            continue
        layers = r["layers"]
        layers = layers[layers["layer"].isin(layers.loc[layers["density"] < 1, "layer"])]  # masked layers only
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for name, g in layers.groupby("layer", sort=False):
            a1.plot(g["step"], g["fan_in_mean"], label=name)
            a2.plot(g["step"], g["ablated_neurons"], label=name)
        a1.set_title(f"{r['name']}: fan-in per layer")
        a1.set_xlabel("step")
        a1.set_ylabel("fan-in (active neurons)")
        a2.set_title("ablated neurons per layer")
        a2.set_xlabel("step")
        a2.set_ylabel("neurons")
        for a in (a1, a2):
            a.grid(alpha=0.3)
        a2.legend(fontsize=6, ncol=2)
        path = os.path.join(out, f"srigl_layers_{r['name']}.png")
        paths.append(save(fig, path))
    return paths


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("results", nargs="+", help="run folders or folders holding run folders")
    p.add_argument("--out", default="results/plots")
    a = p.parse_args()
    runs = load_runs(a.results)
    if not runs:
        sys.exit("no run folders found in " + " ".join(a.results))
    os.makedirs(a.out, exist_ok=True)
    written = [accuracy_vs_sparsity(runs, a.out), accuracy_vs_epoch(runs, a.out)] + srigl_layers(runs, a.out)
    for path in written:
        if path:
            print(path)


if __name__ == "__main__":
    main()
