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

import inspect
import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MLP", "VGG", "BasicBlock", "CifarResNet", "MODELS", "model_options", "check_model_kwargs", "build_model",
           "count_parameters"]


# ----------------------------------------------------------------------------- argument checks
def _int_at_least(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (
            math.isfinite(float(v)) and float(v) > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def _check_mlp(width=512, depth=4, init="default", bad_std=0.05, **_):
    _int_at_least("width", width)
    _int_at_least("depth", depth)
    if init not in ("default", "good", "bad"):
        raise ValueError(f"init must be 'default', 'good' or 'bad', got {init!r}")
    _positive("bad_std", bad_std)


def _check_vgg(width_mult=1.0, cfg=None, batch_norm=True, **_):
    _positive("width_mult", width_mult)
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be true or false, got {batch_norm!r}")
    if cfg is not None and (not isinstance(cfg, (list, tuple)) or not cfg
                            or not all(v == "M" or (not isinstance(v, bool) and isinstance(v, int) and v >= 1)
                                       for v in cfg)):
        raise ValueError(f"cfg must be a non-empty list of channel counts >= 1 and 'M' (max-pool), got {cfg!r}")


def _check_resnet(depth=56, base_width=16, **_):
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6k+2 with k >= 1 (8, 14, 20, ..., 56), got {depth!r}")
    _int_at_least("base_width", base_width)


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int = 10, *, width: int = 512, depth: int = 4,
                 batch_norm: bool = True, init: str = "default", bad_std: float = 0.05):
        super().__init__()
        _check_mlp(width=width, depth=depth, init=init, bad_std=bad_std)
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
        _check_vgg(width_mult=width_mult, cfg=cfg, batch_norm=batch_norm)
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
        _check_resnet(depth=depth, base_width=base_width)
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


# Builders take (in_shape, num_classes) and keyword-only model options; their signatures are
# what :func:`check_model_kwargs` validates a run config's ``model_kw`` against.
def _mlp4_bn(in_shape, num_classes, *, width=512, depth=4, init="default", bad_std=0.05):
    return MLP(_flat(in_shape), num_classes, width=width, depth=depth, batch_norm=True, init=init, bad_std=bad_std)


def _mlp20(in_shape, num_classes, *, width=256, depth=20, init="good", bad_std=0.05):
    return MLP(_flat(in_shape), num_classes, width=width, depth=depth, batch_norm=False, init=init, bad_std=bad_std)


def _mlp256(in_shape, num_classes, *, width=256, depth=2, init="default", bad_std=0.05):
    return MLP(_flat(in_shape), num_classes, width=width, depth=depth, batch_norm=False, init=init, bad_std=bad_std)


def _vgg11(in_shape, num_classes, *, width_mult=1.0, batch_norm=True, cfg=None):
    return VGG(in_shape[0], num_classes, cfg=cfg, batch_norm=batch_norm, width_mult=width_mult)


def _resnet56(in_shape, num_classes, *, depth=56, base_width=16):
    return CifarResNet(depth, in_shape[0], num_classes, base_width=base_width)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp4_bn": _mlp4_bn, "mlp20": _mlp20, "mlp256": _mlp256, "vgg11": _vgg11, "resnet56": _resnet56,
}
_CHECKS: dict[str, Callable[..., None]] = {
    "mlp4_bn": _check_mlp, "mlp20": _check_mlp, "mlp256": _check_mlp, "vgg11": _check_vgg, "resnet56": _check_resnet,
}


def model_options(name: str) -> dict:
    """The keyword options of model ``name`` with their defaults."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return {p.name: p.default for p in inspect.signature(MODELS[name]).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_model_kwargs(name: str, kw: dict) -> None:
    """Validate ``model_kw`` for model ``name`` without building it: names against the builder's
    signature, values (widths, depths, ``bad_std``, ``width_mult``, ResNet depth 6k+2) against the
    same checks the constructors run. Raises ValueError naming the option and what is expected."""
    opts = model_options(name)
    if not isinstance(kw, dict):
        raise ValueError(f"model_kw must be a dict of options of model {name!r}, got {kw!r}")
    unknown = sorted(set(kw) - set(opts), key=str)
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; its options are "
                         + ", ".join(f"{k} (default {v!r})" for k, v in opts.items()))
    _CHECKS[name](**{**opts, **kw})


def build_model(name: str, *, in_shape=(1, 28, 28), num_classes: int = 10, seed: Optional[int] = None,
                **kw) -> nn.Module:
    """Build a registered model. ``seed`` (if given) makes the initialisation reproducible without
    touching the global RNG state. Extra keywords go to the model (e.g. ``width``, ``init``; see
    :func:`model_options`); unknown or invalid ones raise ValueError."""
    check_model_kwargs(name, kw)
    if seed is None:
        return MODELS[name](tuple(in_shape), num_classes, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return MODELS[name](tuple(in_shape), num_classes, **kw)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
