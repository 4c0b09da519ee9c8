"""Training throughput of the same architectures in PyTorch (CPU), for side-by-side
comparison with `dst-bench train`. Benchmark-only: needs torch (make bench-train
installs it in a venv under .build-venv/)."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # projection shortcut, as in DynamicSparse
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths, blocks, strides, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for w, n, s in zip(widths, blocks, strides):
            for b in range(n):
                layers.append(BasicBlock(cin, w, s if b == 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                             nn.Linear(100, 10)), (1, 28, 28)
    if name == "resnet20":
        return ResNet([16, 32, 64], [3, 3, 3], [1, 2, 2]), (3, 32, 32)
    if name == "resnet18":
        return ResNet([64, 128, 256, 512], [2, 2, 2, 2], [1, 2, 2, 2]), (3, 32, 32)
    raise SystemExit(f"unknown model {name}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="mlp,resnet20,resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--csv")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    core = "torch:" + torch.backends.cpu.get_cpu_capability()
    lines = ["framework,model,batch,threads,images_per_second,blas_core,blas_fallback"]
    for name in a.models.split(","):
        model, shape = build(name)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        x = torch.randn(a.batch, *shape)
        y = torch.randint(0, 10, (a.batch,))

        def step():
            opt.zero_grad(set_to_none=False)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        for _ in range(a.warmup):
            step()
        times = []
        for _ in range(a.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        median = sorted(times)[len(times) // 2]
        rate = a.batch / median
        print(f"torch {name:<10} batch {a.batch} threads {a.threads}: {rate:.1f} images/s "
              f"(median of {a.steps} steps: {median * 1000:.1f} ms/step)")
        lines.append(f"pytorch,{name},{a.batch},{a.threads},{rate:.1f},{core},0")
    if a.csv:
        with open(a.csv + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        import os
        os.replace(a.csv + ".tmp", a.csv)


if __name__ == "__main__":
    main()
