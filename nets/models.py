"""Models of the paper's experiments (§4, App. F) and a registry ``build_model(name, **kw)``.

Widths/depths the paper does not state are the project's own documented choices:

* ``mlp4_bn`` — Fig. 1: 4 hidden blocks Linear→BatchNorm1d→ReLU of width 512 (default) + a
  linear classifier (the paper: "4-layer batch-normalised ReLU MLP", widths not stated).
* ``mlp20`` — Fig. 9: 20 hidden Linear→ReLU layers of width 256 (default), no BN, with
  ``init="good"`` (He/Kaiming normal, fan-in, ReLU gain; zero biases) or ``init="bad"``
  (weights N(0, ``bad_std``²) with ``bad_std=0.05`` by default, i.e. about 0.57× the He std at
  width 256, so activations shrink by ≈0.57 per layer; zero biases).
* ``mlp256`` — Fig. 5 memorisation (after Arpit et al. 2017, "but with 256 hidden units"):
  ``depth=2`` hidden Linear→ReLU layers of width 256 (default).
* ``vgg11`` — Fig. 4/6/Table 1: VGG-11 with BatchNorm after every conv (the common CIFAR
  variant), max-pools with ``ceil_mode=True`` so 28×28 inputs (Fashion-MNIST) also reach 1×1,
  classifier Linear(512, classes); ``width_mult`` scales every conv width (quick presets only).
* ``resnet56`` — Fig. 2/7/8: He et al. (2016) CIFAR ResNet, 3 stages × 9 basic blocks with
  16/32/64 channels, identity shortcuts with zero-padded channels ("option A"): ≈0.85M params
  (``depth=6n+2`` and ``base_width`` are configurable; the quick presets use depth 8, width 4).

All models take images (B, C, H, W); the MLPs flatten them.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int = 10, *, width: int = 512, depth: int = 4,
                 batch_norm: bool = True, init: str = "default", bad_std: float = 0.05):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers.append(nn.Linear(d, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)
        if init not in ("default", "good", "bad"):
            raise ValueError(f"init must be 'default', 'good' or 'bad', got {init!r}")
        if init != "default":
            for m in self.net:
                if isinstance(m, nn.Linear):
                    if init == "good":
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    else:
                        nn.init.normal_(m.weight, 0.0, bad_std)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.net(x)


_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, cfg=None, batch_norm: bool = True,
                 width_mult: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg or _VGG11:
            if v != "M":
                v = max(1, int(round(v * width_mult)))
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU())
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3))  # global average pool (vmap-friendly)
        return self.classifier(x)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def shortcut(self, x):  # option A: subsample + zero-pad channels (no parameters)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 56, in_channels: int = 3, num_classes: int = 10, base_width: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        w = base_width
        self.conv = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(w)
        blocks, c = [], w
        for stage, width in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                blocks.append(BasicBlock(c, width, 2 if (stage > 0 and i == 0) else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def _flat(in_shape) -> int:
    return int(math.prod(in_shape))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp4_bn": lambda in_shape, num_classes, width=512, depth=4, **kw: MLP(
        _flat(in_shape), num_classes, width=width, depth=depth, batch_norm=True, **kw),
    "mlp20": lambda in_shape, num_classes, width=256, depth=20, init="good", **kw: MLP(
        _flat(in_shape), num_classes, width=width, depth=depth, batch_norm=False, init=init, **kw),
    "mlp256": lambda in_shape, num_classes, width=256, depth=2, **kw: MLP(
        _flat(in_shape), num_classes, width=width, depth=depth, batch_norm=False, **kw),
    "vgg11": lambda in_shape, num_classes, **kw: VGG(in_shape[0], num_classes, **kw),
    "resnet56": lambda in_shape, num_classes, depth=56, **kw: CifarResNet(depth, in_shape[0], num_classes, **kw),
}


def build_model(name: str, *, in_shape=(1, 28, 28), num_classes: int = 10, seed: Optional[int] = None,
                **kw) -> nn.Module:
    """Build a registered model. ``seed`` (if given) makes the initialisation reproducible without
    touching the global RNG state. Extra keywords go to the model (e.g. ``width``, ``init``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if seed is None:
        return MODELS[name](tuple(in_shape), num_classes, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return MODELS[name](tuple(in_shape), num_classes, **kw)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
