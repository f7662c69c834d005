"""Property tests for theory.minima (paper Theorem 2 eq. 3, the ratio p_A/p_B, eq. 4, App. D)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from theory import gibbs, minima
from theory.landscapes import Minimum

SET = settings(max_examples=25, deadline=None)

losses = st.floats(-5.0, 5.0)
log_eigs = st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2)
angles = st.floats(0.0, math.pi)
lrs = st.floats(1e-3, 1.0)
batches = st.floats(100.0, 1000.0)
sigma2s = st.floats(1e-2, 10.0)
betas = st.floats(1e-2, 10.0)


def make_min(loss, log_eig, angle=0.3):
    """2-D minimum with Hessian Q diag(exp(log_eig)) Q^T, Q a rotation by ``angle``."""
    c, s = math.cos(angle), math.sin(angle)
    q = np.array([[c, -s], [s, c]])
    h = q @ np.diag(np.exp(log_eig)) @ q.T
    return Minimum(location=np.zeros(2), loss=loss, hessian=0.5 * (h + h.T))


# ---------------------------------------------------------------------------- log weights
@SET
@given(losses, log_eigs, angles, lrs, batches, sigma2s)
def test_log_weight_formula(loss, le, ang, lr, s, s2):
    """log p~_A = -1/2 log det H_A - 2 L_A/(n sigma2) (eq. 3), via hessian or logdet alike;
    include_gaussian_factor adds (d/2) log(2 pi T) (App. D eq. 29-30)."""
    m = make_min(loss, le, ang)
    n = lr / s
    expected = -0.5 * sum(le) - 2 * loss / (n * s2)
    w_h = minima.log_weight(loss, m.hessian, lr=lr, batch_size=s, sigma2=s2)
    w_d = minima.log_weight(loss, logdet=m.logdet, lr=lr, batch_size=s, sigma2=s2)
    assert w_h == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert w_d == pytest.approx(expected, rel=1e-10, abs=1e-10)
    t = n * s2 / 2
    full = minima.log_weight(loss, m.hessian, lr=lr, batch_size=s, sigma2=s2, include_gaussian_factor=True)
    # the difference of two numbers of size |L|/T loses ~1e-16 |L|/T absolutely
    assert full - w_h == pytest.approx(math.log(2 * math.pi * t), abs=1e-14 * (abs(loss) / t + 10))


@settings(max_examples=15, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(0.3, 3.0), st.floats(0.3, 3.0), st.floats(-0.5, 0.5), st.floats(0.01, 1.0))
def test_full_laplace_weight_is_exact_for_a_quadratic(l0, a, b, c, temp):
    """For L = L0 + 1/2 x^T H x, int exp(-L/T) dx = exp(-L0/T) (2 pi T)^(d/2) det(H)^(-1/2) exactly,
    i.e. log_weight(include_gaussian_factor=True) == log Z from quadrature (gibbs.log_partition).
    Grid +-14 std (of the widest direction), h <= std_min/6: Riemann sum of a Gaussian is spectrally
    accurate and tails are ~exp(-98) -> tolerance 1e-8."""
    h = np.array([[a, c * math.sqrt(a * b)], [c * math.sqrt(a * b), b]])
    evals = np.linalg.eigvalsh(h)
    std_max, std_min = math.sqrt(temp / evals[0]), math.sqrt(temp / evals[-1])
    half = 14 * std_max
    n = int(math.ceil(2 * half / (std_min / 6))) | 1
    x = np.linspace(-half, half, n)
    dx = x[1] - x[0]
    g = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1)
    loss = l0 + 0.5 * np.einsum("...i,ij,...j->...", g, h, g)
    kw = dict(lr=2 * temp, batch_size=1.0, sigma2=1.0)  # T = temp
    log_z = gibbs.log_partition(loss, dx * dx, **kw)
    assert minima.log_weight(l0, h, include_gaussian_factor=True, **kw) == pytest.approx(log_z, abs=1e-8)


@SET
@given(losses, log_eigs, losses, log_eigs, lrs, batches, sigma2s, betas)
def test_rescaling_invariance(la, lea, lb, leb, lr, s, s2, beta):
    """(lr, S) -> (beta lr, beta S) leaves log weights, log ratios and probabilities unchanged (eq. 3)."""
    A, B = make_min(la, lea), make_min(lb, leb)
    kw = dict(lr=lr, batch_size=s, sigma2=s2)
    kwb = dict(lr=beta * lr, batch_size=beta * s, sigma2=s2)
    assert minima.log_weight(la, logdet=A.logdet, **kwb) == pytest.approx(
        minima.log_weight(la, logdet=A.logdet, **kw), rel=1e-12, abs=1e-12
    )
    assert minima.log_ratio(A, B, **kwb) == pytest.approx(minima.log_ratio(A, B, **kw), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(
        minima.probabilities([A, B], **kwb), minima.probabilities([A, B], **kw), rtol=1e-10, atol=1e-300
    )


# ---------------------------------------------------------------------------- log ratios
@SET
@given(losses, log_eigs, losses, log_eigs, losses, log_eigs, lrs, batches, sigma2s)
def test_log_ratio_antisymmetric_and_transitive(la, lea, lb, leb, lc, lec, lr, s, s2):
    """log r(A,B) = -log r(B,A) and log r(A,B) + log r(B,C) = log r(A,C), r = p_A/p_B
    (tolerance: rounding of terms of size <= 2 * 5 / T, T >= 5e-8, i.e. rel 1e-12 of that scale)."""
    A, B, C = make_min(la, lea), make_min(lb, leb), make_min(lc, lec)
    kw = dict(lr=lr, batch_size=s, sigma2=s2)
    scale = 10.0 / gibbs.temperature(lr, s, s2) + 10.0
    rab, rba = minima.log_ratio(A, B, **kw), minima.log_ratio(B, A, **kw)
    rbc, rac = minima.log_ratio(B, C, **kw), minima.log_ratio(A, C, **kw)
    assert abs(rab + rba) <= 1e-12 * scale
    assert abs(rab + rbc - rac) <= 1e-12 * scale
    # and the ratio is the difference of eq. 3 log weights
    wa = minima.log_weight(la, logdet=A.logdet, **kw)
    wb = minima.log_weight(lb, logdet=B.logdet, **kw)
    assert abs(rab - (wa - wb)) <= 1e-12 * scale


noises = st.floats(-6.0, 6.0).map(lambda e: 10.0**e)


@SET
@given(losses, log_eigs, st.floats(0.01, 3.0), noises, sigma2s)
def test_equal_depth_flatter_wins(loss, le, extra, n, s2):
    """L_A = L_B and det H_A < det H_B  =>  p_A/p_B = sqrt(det H_B/det H_A) > 1 at every noise."""
    A = make_min(loss, le)
    B = make_min(loss, [le[0] + extra, le[1]])  # B sharper
    r = minima.log_ratio(A, B, lr=n, batch_size=1.0, sigma2=s2)
    assert r > 0
    assert r == pytest.approx(0.5 * (B.logdet - A.logdet), rel=1e-10)


@SET
@given(losses, st.floats(1e-3, 3.0), log_eigs, noises, sigma2s)
def test_equal_curvature_deeper_wins(loss, dl, le, n, s2):
    """det H_A = det H_B and L_A < L_B  =>  p_A > p_B at every noise (ratio exp(2 (L_B - L_A)/(n sigma2)))."""
    A = make_min(loss, le, 0.1)
    B = make_min(loss + dl, le, 1.2)  # same eigenvalues, rotated: same det
    r = minima.log_ratio(A, B, lr=n, batch_size=1.0, sigma2=s2)
    assert r > 0
    assert r == pytest.approx(2 * dl / (n * s2), rel=1e-8)


@SET
@given(losses, st.floats(1e-3, 3.0), log_eigs, st.floats(0.0, 3.0), sigma2s)
def test_higher_and_sharper_never_wins(loss, dl, le, extra, s2):
    """L_A > L_B and det H_A >= det H_B  =>  p_A < p_B at every noise n (Sec. 3.2: Y < 0), and
    threshold_noise = inf.  Checked on n = 1e-8 ... 1e8."""
    A = make_min(loss + dl, [le[0] + extra, le[1]])
    B = make_min(loss, le)
    r = minima.log_ratio(A, B, lr=np.logspace(-8, 8, 33), batch_size=1.0, sigma2=s2)  # vectorised over n
    assert r.shape == (33,) and np.all(r < 0)
    assert minima.threshold_noise(A.loss, B.loss, A.logdet, B.logdet, s2) == math.inf


@SET
@given(losses, st.floats(1e-3, 3.0), log_eigs, st.floats(0.1, 5.0), sigma2s, st.floats(1.0, 1000.0))
def test_threshold_noise_is_the_sign_change(lb, dl, leb, flat, s2, s):
    """For A higher (L_A > L_B) but flatter, log r(A,B) < 0 at n*(1 - eps) and > 0 at n*(1 + eps):
    n* = 4 (L_A - L_B)/(sigma2 (logdet_B - logdet_A)).  log r(n*(1+-eps)) = +-(D/2) eps + O(eps^2),
    D = logdet_B - logdet_A >= 0.1, eps = 1e-6: margin >= 5e-8 >> rounding (~1e-15 * D)."""
    B = make_min(lb, leb)
    A = make_min(lb + dl, [leb[0] - flat, leb[1]])
    n_star = minima.threshold_noise(A.loss, B.loss, A.logdet, B.logdet, s2)
    assert n_star == pytest.approx(4 * dl / (s2 * (B.logdet - A.logdet)), rel=1e-12)
    eps = 1e-6
    # noise n = lr / S with S = s: lr = n S
    assert minima.log_ratio(A, B, lr=n_star * (1 - eps) * s, batch_size=s, sigma2=s2) < 0
    assert minima.log_ratio(A, B, lr=n_star * (1 + eps) * s, batch_size=s, sigma2=s2) > 0
    assert abs(minima.log_ratio(A, B, lr=n_star * s, batch_size=s, sigma2=s2)) < 1e-9 * (1 + flat)


@SET
@given(losses, st.floats(1e-3, 3.0), log_eigs, st.floats(0.1, 5.0), sigma2s)
def test_paper_printed_eq4_threshold_is_too_small(lb, dl, leb, flat, s2):
    """The paper's eq. 4 as printed, n > (L_A - L_B)/(2 sigma2 log sqrt(det H_B/det H_A)), is n*/4:
    there log r = D/2 - 2 D = -3D/2 < 0, so A is NOT favoured -- the printed bound is off by 4."""
    B = make_min(lb, leb)
    A = make_min(lb + dl, [leb[0] - flat, leb[1]])
    d = B.logdet - A.logdet
    n_paper = dl / (2 * s2 * math.log(math.sqrt(math.exp(d))))
    n_star = minima.threshold_noise(A.loss, B.loss, A.logdet, B.logdet, s2)
    assert n_paper == pytest.approx(n_star / 4, rel=1e-10)
    r = minima.log_ratio(A, B, lr=n_paper, batch_size=1.0, sigma2=s2)
    assert r == pytest.approx(-1.5 * d, rel=1e-8)
    assert r < 0


def test_threshold_noise_cases_and_vectorisation():
    """Case table of threshold_noise (A favoured iff n > n*), elementwise over arrays."""
    la = np.array([1.0, 1.0, 0.5, 0.5, 0.0, 0.5])
    lb = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    da = np.array([0.0, 2.0, 0.0, 1.0, 1.0, 1.0])
    db = np.array([2.0, 1.0, 1.0, 1.0, 1.0, 0.5 + 0.5])
    out = minima.threshold_noise(la, lb, da, db, 2.0)
    # higher+flatter: 4*0.5/(2*2) = 0.5; higher+sharper: inf; equal depth, flatter: 0; tie: inf;
    # lower, equal det: 0; tie again: inf
    np.testing.assert_array_equal(out, [0.5, math.inf, 0.0, math.inf, 0.0, math.inf])
    assert isinstance(minima.threshold_noise(1.0, 0.5, 0.0, 2.0, 2.0), float)
    with pytest.raises(ValueError, match="swapped"):
        minima.threshold_noise(0.0, 1.0, 2.0, 1.0, 1.0)  # lower but sharper
    # ... and then the swapped call gives the crossing, above which B (higher, flatter) wins
    n_c = minima.threshold_noise(1.0, 0.0, 1.0, 2.0, 1.0)
    A = make_min(0.0, [1.0, 1.0])
    B = make_min(1.0, [0.5, 0.5])
    assert minima.log_ratio(A, B, lr=0.9 * n_c, batch_size=1, sigma2=1.0) > 0
    assert minima.log_ratio(A, B, lr=1.1 * n_c, batch_size=1, sigma2=1.0) < 0
    with pytest.raises(ValueError, match="sigma2"):
        minima.threshold_noise(1.0, 0.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="loss_a"):
        minima.threshold_noise(np.nan, 0.0, 0.0, 1.0, 1.0)


# ---------------------------------------------------------------------------- probabilities
@SET
@given(st.lists(st.tuples(losses, log_eigs), min_size=1, max_size=5), st.floats(-12.0, 1.0), sigma2s)
def test_probabilities_normalised_and_match_weights(specs, log10_n, s2):
    """p_A = p~_A / sum p~ (eq. 3): sums to 1, no NaN even when every exp(-2L/(n sigma2)) underflows
    (n down to 1e-12), and ratios agree with log_ratio wherever both probabilities are > 1e-250."""
    ms = [make_min(l, le) for l, le in specs]
    n = 10.0**log10_n
    p = minima.probabilities(ms, lr=n, batch_size=1.0, sigma2=s2)
    assert p.shape == (len(ms),)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, rel=1e-12)
    for i in range(len(ms)):
        for j in range(len(ms)):
            if p[i] > 1e-250 and p[j] > 1e-250:
                r = minima.log_ratio(ms[i], ms[j], lr=n, batch_size=1.0, sigma2=s2)
                assert math.log(p[i] / p[j]) == pytest.approx(r, rel=1e-9, abs=1e-9)


def test_probabilities_vectorised_over_noise():
    """Array-valued lr gives shape (n_minima, *lr.shape), each column normalised."""
    ms = [make_min(0.0, [0.0, 0.0]), make_min(0.1, [-2.0, -2.0])]
    lr = np.logspace(-3, 1, 7)
    p = minima.probabilities(ms, lr=lr, batch_size=1.0, sigma2=1.0)
    assert p.shape == (2, 7)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-14)
    # higher-but-flatter minimum 1 gains probability monotonically with noise
    assert np.all(np.diff(p[1]) > 0)


# ---------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise():
    """Invalid inputs raise ValueError naming the parameter."""
    good = dict(lr=0.1, batch_size=10, sigma2=1.0)
    with pytest.raises(ValueError, match="hessian"):
        minima.log_weight(0.0, np.array([[1.0, 0.0], [0.0, -1.0]]), **good)  # saddle
    with pytest.raises(ValueError, match="hessian"):
        minima.log_weight(0.0, np.array([[1.0, 0.5], [0.0, 1.0]]), **good)  # not symmetric
    with pytest.raises(ValueError, match="hessian"):
        minima.log_weight(0.0, np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, -1.0]]]), **good)
    with pytest.raises(ValueError, match="exactly one"):
        minima.log_weight(0.0, **good)
    with pytest.raises(ValueError, match="exactly one"):
        minima.log_weight(0.0, np.eye(2), 0.0, **good)
    with pytest.raises(ValueError, match="dim"):
        minima.log_weight(0.0, logdet=0.0, include_gaussian_factor=True, **good)
    with pytest.raises(ValueError, match="loss_min"):
        minima.log_weight(np.nan, logdet=0.0, **good)
    with pytest.raises(ValueError, match="logdet"):
        minima.log_weight(0.0, logdet=np.nan, **good)
    for bad, name in [(dict(lr=0.0), "lr"), (dict(batch_size=0.5), "batch_size"), (dict(sigma2=-1.0), "sigma2"),
                      (dict(lr=np.nan), "lr")]:
        kw = {**good, **bad}
        with pytest.raises(ValueError, match=name):
            minima.log_weight(0.0, logdet=0.0, **kw)
        with pytest.raises(ValueError, match=name):
            minima.log_ratio(make_min(0, [0, 0]), make_min(1, [0, 0]), **kw)
        with pytest.raises(ValueError, match=name):
            minima.probabilities([make_min(0, [0, 0])], **kw)
    with pytest.raises(ValueError, match="dimension"):
        A1 = Minimum(location=np.zeros(1), loss=0.0, hessian=np.eye(1))
        minima.log_ratio(A1, make_min(0, [0, 0]), **good)
    with pytest.raises(ValueError, match="minima"):
        minima.probabilities([], **good)


# ---------------------------------------------------------------------------- quadrature reference
class Quartic1D:
    """Exactly known 1-D test landscape L(x) = (x^2 - 1)^2 + t x (landscape API of theory.landscapes).

    Minima and the barrier are the roots of L' = 4x^3 - 4x + t; L'' = 12x^2 - 4, L''' = 24x, L'''' = 24."""

    dim = 1

    def __init__(self, tilt):
        self.t = tilt
        self.roots = np.sort(np.roots([4.0, 0.0, -4.0, tilt]).real)

    def value(self, theta):
        x = np.asarray(theta, dtype=float)[..., 0]
        return (x * x - 1.0) ** 2 + self.t * x

    def minima(self):
        return [
            Minimum(location=np.array([x]), loss=(x * x - 1) ** 2 + self.t * x, hessian=np.array([[12 * x * x - 4]]))
            for x in (self.roots[0], self.roots[2])
        ]

    def basin_index(self, theta):
        return (np.asarray(theta, dtype=float)[..., 0] > self.roots[1]).astype(np.int64)

    def bounds(self, temperature):
        return np.array([-3.0]), np.array([3.0])

    def laplace_kappa(self):
        """First Laplace correction: int exp(-L/T) = Laplace * (1 + kappa T + O(T^2)),
        kappa = 5 L'''^2 / (24 L''^3) - L'''' / (8 L''^2), per minimum."""
        out = []
        for x in (self.roots[0], self.roots[2]):
            a, b, c = 12 * x * x - 4, 24 * x, 24.0
            out.append(5 * b * b / (24 * a**3) - c / (8 * a * a))
        return np.array(out)


class Separable2D:
    """L(x, y) = Quartic1D(x) + k y^2 / 2: basins are set by x alone, so the 2-D basin masses equal
    the 1-D ones exactly (the y integral factorises)."""

    dim = 2

    def __init__(self, tilt, k):
        self.q, self.k = Quartic1D(tilt), k

    def value(self, theta):
        th = np.asarray(theta, dtype=float)
        return self.q.value(th[..., :1]) + 0.5 * self.k * th[..., 1] ** 2

    def minima(self):
        return [
            Minimum(location=np.array([m.location[0], 0.0]), loss=m.loss,
                    hessian=np.diag([m.hessian[0, 0], self.k]))
            for m in self.q.minima()
        ]

    def basin_index(self, theta):
        return self.q.basin_index(np.asarray(theta)[..., :1])

    def bounds(self, temperature):
        return np.array([-3.0, -3.0]), np.array([3.0, 3.0])


def _exact_1d(land, temp):
    """Reference by adaptive quadrature (scipy.integrate.quad, epsabs/epsrel 1e-13) split at the barrier."""
    lmin = min(m.loss for m in land.minima())
    f = lambda x: math.exp(-(float(land.value(np.array([x]))) - lmin) / temp)  # noqa: E731
    b = land.roots[1]
    ma = integrate.quad(f, -3, b, epsabs=0, epsrel=1e-13, limit=200, points=[land.roots[0]])[0]
    mb = integrate.quad(f, b, 3, epsabs=0, epsrel=1e-13, limit=200, points=[land.roots[2]])[0]
    return np.array([ma, mb]) / (ma + mb)


def test_basin_probabilities_1d_grid_convergence():
    """1-D quadrature: boundaries found by bisection, Simpson per basin, so the error is O(h^4):
    halving h divides the error by ~16 (asserted >= 8), and the default grid matches adaptive
    quadrature to 1e-11."""
    land = Quartic1D(0.05)
    kw = dict(lr=0.1, batch_size=1.0, sigma2=1.0)  # T = 0.05
    exact = _exact_1d(land, 0.05)
    errs = [abs(minima.basin_probabilities(land, n_grid=n, **kw)[1] - exact[1]) for n in (41, 81, 161)]
    assert errs[0] / errs[1] >= 8 and errs[1] / errs[2] >= 8
    np.testing.assert_allclose(minima.basin_probabilities(land, **kw), exact, rtol=1e-11, atol=1e-14)


def test_laplace_weights_converge_to_quadrature_at_rate_T():
    """Laplace (eq. 3) vs exact basin masses as n -> 0: the log-ratio error is
    e(T) = (kappa_A - kappa_B) T + O(T^2) (next term of Laplace's expansion; kappa from L'', L''', L'''').
    So (i) e(T)/e(T/2) -> 2: the O(T^2) remainder makes it 2 (1 + O(T)); at T <= 0.02 we require
    |ratio - 2| <= 0.1 (observed 2 + ~2.5 T); (ii) e(T)/T -> kappa_A - kappa_B with a remainder that
    halves with T.  Barrier corrections exp(-(L_barrier - L_min)/T) <= exp(-25) are negligible."""
    land = Quartic1D(0.3)
    kappa = land.laplace_kappa()
    temps = [0.02, 0.01, 0.005, 0.0025]
    errs, rel = [], []
    for t in temps:
        kw = dict(lr=2 * t, batch_size=1.0, sigma2=1.0)
        pq = minima.basin_probabilities(land, **kw)
        pl = minima.probabilities(land.minima(), **kw)
        errs.append(math.log(pq[0] / pq[1]) - math.log(pl[0] / pl[1]))
        rel.append(abs(pl[1] - pq[1]) / pq[1])  # relative error of the less probable basin
    errs = np.array(errs)
    ratios = errs[:-1] / errs[1:]
    np.testing.assert_allclose(ratios, 2.0, atol=0.1)
    remainder = errs / np.array(temps) - (kappa[0] - kappa[1])
    np.testing.assert_allclose(remainder[:-1] / remainder[1:], 2.0, atol=0.2)
    # relative error of the basin probability shrinks O(T) too
    assert np.all(np.diff(rel) < 0)
    np.testing.assert_allclose(np.array(rel[:-1]) / np.array(rel[1:]), 2.0, atol=0.1)


def test_basin_probabilities_2d_matches_1d():
    """2-D tensor Simpson on a separable landscape equals the 1-D basin masses: the y-integral
    factorises.  Error budget: Simpson O(h^4) ~ 1e-9 here, indicator cut at x = barrier weighted by
    exp(-(L_barrier - L_min)/T) = exp(-1.05/0.05) ~ 1e-9 -> tolerance 1e-7."""
    land2, land1 = Separable2D(0.05, 2.0), Quartic1D(0.05)
    kw = dict(lr=0.1, batch_size=1.0, sigma2=1.0)
    np.testing.assert_allclose(
        minima.basin_probabilities(land2, **kw), minima.basin_probabilities(land1, **kw), atol=1e-7
    )


def test_basin_probabilities_with_lead_landscape():
    """Integration with theory.landscapes (1-D double well with chosen depth and curvature):
    the Laplace log-ratio error is O(T) there too, e(T)/e(T/2) = 2 +- 0.25 at T <= 0.02."""
    from theory import landscapes

    land = landscapes.double_well_1d()
    errs = []
    for t in (0.02, 0.01):
        kw = dict(lr=2 * t, batch_size=1.0, sigma2=1.0)
        pq = minima.basin_probabilities(land, **kw)
        pl = minima.probabilities(land.minima(), **kw)
        assert pq.sum() == pytest.approx(1.0, rel=1e-12)
        errs.append(math.log(pq[0] / pq[1]) - math.log(pl[0] / pl[1]))
    assert errs[0] / errs[1] == pytest.approx(2.0, abs=0.25)


def test_basin_probabilities_bad_inputs():
    land = Quartic1D(0.1)
    with pytest.raises(ValueError, match="lr"):
        minima.basin_probabilities(land, lr=-1.0, batch_size=1, sigma2=1.0)
    with pytest.raises(ValueError, match="n_grid"):
        minima.basin_probabilities(land, lr=0.1, batch_size=1, sigma2=1.0, n_grid=100)


def test_log_weight_vectorised_over_stacked_hessians():
    """A stack of Hessians (k, d, d) with k losses gives k eq.-3 log weights; lazy re-export of Minimum."""
    hs = np.stack([np.diag([1.0, 2.0]), np.diag([3.0, 0.5]), np.array([[2.0, 0.5], [0.5, 1.0]])])
    loss = np.array([0.0, 0.1, -0.2])
    w = minima.log_weight(loss, hs, lr=0.1, batch_size=10, sigma2=2.0)
    expected = -0.5 * np.log(np.linalg.det(hs)) - loss / 0.01  # T = 0.1 * 2 / 20
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert minima.Minimum is Minimum
