"""Network experiments of the paper (§4, App. F): the only package that imports torch.

Modules: ``data`` (dataset readers, on-device data), ``models`` (MLPs, VGG-11, ResNet-56,
``build_model``), ``schedules`` (lr / batch-size schedules), ``train`` (single and vmap-batched
SGD training, resumable), ``experiments`` (presets per figure/table), ``executor`` (local / Dask),
``runner`` (plan → runs → analyses), ``measure`` / ``geometry`` (curvature, gradient-noise and
noise-geometry measurements of any torch model, on its device), ``measurements`` (the measurement
specs of the presets and ``measure_model``), ``results`` (reading results back without torch: tables,
comparisons), ``progress``. CLI: ``python -m nets --help`` (installed as ``three-factors-nets``).
"""

__all__: list[str] = []  # the API is in the submodules
