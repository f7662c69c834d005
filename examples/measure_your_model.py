"""Sharpness and gradient noise of your own torch model, with nets.measure.

Trains a small convolutional network of your own (any ``torch.nn.Module`` and any mean-reduced loss
work the same way) for a few epochs with two learning rates at one batch size, then measures at each
endpoint:

* the top Hessian eigenvalues (Lanczos on the model's device, with its convergence record),
* ‖H‖_F and tr H (Hutchinson on exact Hessian-vector products, value ± standard error),
* the gradient-noise statistics: tr C (the trace of the per-sample gradient covariance, the
  theory's σ² summed over parameters), the noise scale tr C/‖∇L‖² and the cosine between C and H,
* the measured temperature η·tr C/(2S) of the SDE approximation (paper eq. 2 with C = tr C/p · I).

Run:  python examples/measure_your_model.py            (real Fashion-MNIST if installed, else synthetic)
      python examples/measure_your_model.py --toy      (seconds; what CI runs)
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import nets.measure as M


class SmallCNN(nn.Module):
    """Your model: nothing of the project's is needed to measure it."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Linear(width * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def get_data(n_train: int, device):
    try:
        from nets.data import load
        d = load("fashion-mnist", device=device, val_size=1000, train_size=n_train, test_size=1000)
        return d.x_train, d.y_train, "Fashion-MNIST"
    except Exception:                      # no dataset installed: random images, still a valid model/loss
        g = torch.Generator().manual_seed(0)
        return torch.randn(n_train, 1, 28, 28, generator=g).to(device), \
            torch.randint(0, 10, (n_train,), generator=g).to(device), "synthetic data"


def train(model, x, y, *, lr: float, batch_size: int, epochs: int, seed: int = 0):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator(device=x.device).manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g, device=x.device)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--toy", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    n_train, epochs, width, n_meas = (512, 1, 4, 128) if args.toy else (4096, 5, 16, 1024)
    torch.manual_seed(0)
    x, y, source = get_data(n_train, args.device)
    batch_size = 32
    loss_fn = nn.CrossEntropyLoss()
    print(f"{source}: {n_train} training samples, batch size {batch_size}, {epochs} epoch(s) on {args.device}")
    rows = []
    for lr in (0.01, 0.1):
        torch.manual_seed(1)
        model = train(SmallCNN(width).to(args.device), x, y, lr=lr, batch_size=batch_size, epochs=epochs)
        xm, ym = x[:n_meas], y[:n_meas]
        top = M.hessian_top_eigenvalues(model, loss_fn, xm, ym, k=2, tol=1e-3, return_info=True)
        fro = M.hessian_frobenius_hutchinson(model, loss_fn, xm, ym, n_samples=10 if args.toy else 50)
        tr = M.hessian_trace_hutchinson(model, loss_fn, xm, ym, n_samples=10 if args.toy else 50)
        noise = M.gradient_noise_stats(model, loss_fn, xm[:64], ym[:64], k=3, n_probe=8 if args.toy else 30)
        temperature = lr * noise.trace_cov / (2 * batch_size)
        rows.append((lr, top, fro, tr, noise, temperature))
        print(f"\nlr = {lr} (eta/S = {lr / batch_size:.2g}):")
        print(f"  top Hessian eigenvalues {[round(float(v), 3) for v in top.eigenvalues]} (Lanczos converged: "
              f"{top.converged} in {top.iterations} iterations); stability limit 2/lr = {2 / lr:g}")
        print(f"  ||H||_F = {fro.value:.4g} ± {fro.stderr:.2g}, tr H = {tr.value:.4g} ± {tr.stderr:.2g}")
        print(f"  tr C = {noise.trace_cov:.4g}, noise scale tr C/|grad L|^2 = {noise.b_simple:.3g}, "
              f"cos(C, H) = {noise.alignment:.3f} ± {noise.alignment_se:.2g}")
        print(f"  measured temperature lr * tr C / (2 S) = {temperature:.3g}")
    (lr_a, top_a, fro_a, *_), (lr_b, top_b, fro_b, *_) = rows
    print(f"\nthe larger learning rate (more noise) ended {'flatter' if fro_b.value < fro_a.value else 'sharper'}: "
          f"||H||_F {fro_a.value:.3g} -> {fro_b.value:.3g} (the theory predicts flatter at the minimum, eq. 3"
          + ("; after one epoch neither run is at a minimum: run without --toy)" if args.toy else ")"))
    return rows


if __name__ == "__main__":
    main()
