"""The numerics policy of nets.measure (TF32 off while measuring, restored after) and its handling
of inputs from a user's own model (dtype/device conversion, bad values named).

The TF32 switches are process-wide flags that PyTorch lets a CPU build set and read, so the policy
is tested here without a GPU: what a CUDA run would use is what these flags say.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nets import geometry as GM
from nets import measure as M

B = torch.backends


def _flags():
    return B.cuda.matmul.allow_tf32, B.cudnn.allow_tf32, torch.get_float32_matmul_precision()


@pytest.fixture
def tf32_on():
    """TF32 allowed everywhere (PyTorch's settings when a user opts in), restored afterwards."""
    saved = _flags()
    torch.set_float32_matmul_precision("high")
    B.cuda.matmul.allow_tf32 = True
    B.cudnn.allow_tf32 = True
    yield
    torch.set_float32_matmul_precision(saved[2])
    B.cuda.matmul.allow_tf32, B.cudnn.allow_tf32 = saved[:2]


def test_tf32_off_inside_and_restored_after(tf32_on):
    assert _flags() == (True, True, "high")
    with M.measurement_precision():
        assert _flags() == (False, False, "highest")
        with M.measurement_precision():              # nested: still off, and still off after it
            assert _flags() == (False, False, "highest")
        assert _flags() == (False, False, "highest")
    assert _flags() == (True, True, "high")


def test_tf32_restored_after_an_error(tf32_on):
    with pytest.raises(ZeroDivisionError):
        with M.measurement_precision():
            1 / 0
    assert _flags() == (True, True, "high")
    # a failing measurement restores them too
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="targets must have as many samples"):
        M.hessian_trace_hutchinson(model, nn.CrossEntropyLoss(), torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    assert _flags() == (True, True, "high")


def test_every_measurement_runs_with_tf32_off(tf32_on):
    """The flags as seen by the model's forward pass during each public measurement."""
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(_flags())
            return x

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), Probe(), nn.Linear(3, 3)).double()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    loss = nn.CrossEntropyLoss()
    calls = [
        lambda: M.loss_and_gradient(model, loss, x, y),
        lambda: M.hessian_vector_product(model, loss, x, y, torch.ones(27)),
        lambda: M.hessian_vector_product_fd(model, loss, x, y, torch.ones(27)),
        lambda: M.hessian_top_eigenvalues(model, loss, x, y, k=1, tol=1e-4),
        lambda: M.hessian_top_eigenvalues(model, loss, x, y, k=1, tol=1e-4, method="scipy"),
        lambda: M.hessian_trace_hutchinson(model, loss, x, y, n_samples=2),
        lambda: M.hessian_frobenius_hutchinson(model, loss, x, y, n_samples=2),
        lambda: M.hessian_norm_fd(model, loss, x, y, n_samples=2),
        lambda: M.per_sample_gradients(model, loss, x, y),
        lambda: M.gradient_noise_stats(model, loss, x, y, k=1, n_probe=2),
        lambda: M.evaluate(model, loss, x, y),
        lambda: GM.gauss_newton_vector_product(model, x, torch.ones(27), loss="ce"),
        lambda: GM.alignment_metrics(model, x, y, loss="ce", n_probe=2, n_top=1, n_random=1),
    ]
    for call in calls:
        seen.clear()
        call()
        assert seen and all(f == (False, False, "highest") for f in seen), call
    assert _flags() == (True, True, "high")


def test_per_backend_api_is_saved_and_restored():
    """Where the process set TF32 through PyTorch's per-backend ``fp32_precision`` API, reading the
    legacy flags raises; the policy then switches and restores through that API."""
    if not hasattr(B.cuda.matmul, "fp32_precision"):
        pytest.skip("this PyTorch has no per-backend fp32_precision API")
    saved = _flags()
    try:
        B.cuda.matmul.fp32_precision = "tf32"
        B.cudnn.conv.fp32_precision = "tf32"
        with M.measurement_precision():
            assert B.cuda.matmul.fp32_precision == "ieee" and B.cudnn.conv.fp32_precision == "ieee"
        assert B.cuda.matmul.fp32_precision == "tf32" and B.cudnn.conv.fp32_precision == "tf32"
    finally:   # back to the legacy API (writing the legacy flags ends PyTorch's "mixed API" state)
        torch.set_float32_matmul_precision(saved[2])
        B.cuda.matmul.allow_tf32, B.cudnn.allow_tf32 = saved[:2]
    assert _flags() == saved


def test_concurrent_measurements_keep_tf32_off_until_the_last_ends(tf32_on):
    inside, release = threading.Event(), threading.Event()

    def other():
        with M.measurement_precision():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with M.measurement_precision():
        pass
    # this thread's block ended while the other's is still open: TF32 must stay off for it
    assert _flags() == (False, False, "highest")
    release.set()
    t.join()
    assert _flags() == (True, True, "high")


# ----------------------------------------------------------------------------------------------
# inputs from a user's model
# ----------------------------------------------------------------------------------------------
def _model32():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3))


def test_float64_inputs_to_a_float32_model_are_converted():
    model = _model32()
    g = torch.Generator().manual_seed(1)
    x64 = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    loss = nn.CrossEntropyLoss()
    # converted once to the parameters' dtype, so bitwise the result of float32 inputs; integer
    # targets of any width become int64 (cross-entropy's class indices)
    x32 = x64.float()
    assert np.array_equal(M.hessian_top_eigenvalues(model, loss, x64, y.int(), k=1, tol=1e-4),
                          M.hessian_top_eigenvalues(model, loss, x32, y, k=1, tol=1e-4))
    assert M.hessian_frobenius_hutchinson(model, loss, x64, y, n_samples=3) == \
        M.hessian_frobenius_hutchinson(model, loss, x32, y, n_samples=3)
    a = GM.alignment_metrics(model, x64.numpy(), y.numpy(), loss="ce", n_probe=3, n_top=0, n_random=1)
    b = GM.alignment_metrics(model, x32, y, loss="ce", n_probe=3, n_top=0, n_random=1)
    assert a.trace_sigma_g == b.trace_sigma_g and np.array_equal(a.beta_random, b.beta_random)
    # float64 regression targets for the mean-squared loss as well
    t64 = torch.randn(20, 3, generator=g, dtype=torch.float64)
    r = GM.alignment_metrics(model, x64, t64, loss="mse", n_probe=3, n_top=0, n_random=0)
    assert np.isfinite(r.mu)


@pytest.mark.parametrize("bad, match", [
    (dict(inputs=torch.full((6, 5), float("nan"))), "inputs contains NaN"),
    (dict(targets=torch.full((6, 3), float("inf"))), "targets contains NaN"),
    (dict(inputs=object()), "inputs must be a tensor or an array"),
    (dict(targets=torch.zeros(5, dtype=torch.long)), "targets must have as many samples as inputs"),
    (dict(inputs=torch.zeros(0, 5)), "inputs must have a leading sample dimension"),
])
def test_bad_inputs_are_named(bad, match):
    model = _model32()
    kw = dict(inputs=torch.randn(6, 5), targets=torch.randn(6, 3))
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        M.hessian_frobenius_hutchinson(model, nn.MSELoss(), kw["inputs"], kw["targets"], n_samples=2)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])])
def test_probes_are_the_same_on_every_device(device):
    """Probes come from numpy's stream of the seed on the host: bitwise the same on any device."""
    dim, seed = 1001, np.random.SeedSequence(3)
    probes = M._Probes(seed, dim, device)
    gauss, signs = probes.gaussian(), probes.rademacher()
    assert gauss.device.type == signs.device.type == device and gauss.dtype == signs.dtype == torch.float64
    rng = np.random.default_rng(np.random.SeedSequence(3))
    np.testing.assert_array_equal(gauss.cpu().numpy(), rng.standard_normal(dim))
    bits = np.unpackbits(np.frombuffer(rng.bytes(126), dtype=np.uint8), count=dim)
    np.testing.assert_array_equal(signs.cpu().numpy(), 2.0 * bits - 1.0)
    # Rademacher: E z = 0, E zzᵀ = I; a stuck bit or a 0/1 probe would be far outside 5 sd
    assert set(np.unique(signs.cpu().numpy())) == {-1.0, 1.0} and abs(float(signs.sum())) < 5 * dim ** 0.5


def test_module_layering():
    """nets.measure (estimators) imports neither nets.geometry nor nets.measurements, anywhere in
    the module (lazy imports included): no import cycle between the three."""
    import ast

    tree = ast.parse((Path(M.__file__)).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{'.' * node.level}{node.module or ''}"} | {a.name for a in node.names}
    assert not {n for n in imported if any(m in n for m in ("geometry", "measurements", "train"))}, imported
    from nets import measurements as MS
    for mod in (M, GM, MS):
        assert all(hasattr(mod, name) for name in mod.__all__)
