"""Memory safety: run the simulators' kernels with numba's bounds checking switched on.

Numba does not check array bounds by default; an out-of-bounds write corrupts the heap and may
crash a later, unrelated allocation (this happened once: SGD with replacement wrote past a
1-element placeholder array).  A fresh interpreter with NUMBA_BOUNDSCHECK=1 turns any such access
into an IndexError, so this test fails on it deterministically."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from theory.landscapes import IsotropicNoiseFiniteSum, LeastSquares, QuarticDoubleWell, Quadratic, wells_2d
    from sim.noise import ConstantCovariance, StateDependent
    from sim.observers import Basins, FirstPassage, Histogram, Record
    from sim.sde import simulate_sde
    from sim.sgd import simulate_sgd

    dw = QuarticDoubleWell(0.1)
    fs = IsotropicNoiseFiniteSum(dw, 200, 1.0, seed=0)

    def observers():
        return [Histogram(np.linspace(-2.5, 2.5, 41), burn_in=10, every=2), FirstPassage(target=1, radius=0.2),
                Record(20), Basins(30)]

    for repl in (True, False):
        for mom in (0.0, 0.5):
            simulate_sgd(fs, lr=0.05, batch_size=7, n_steps=60, n_particles=700, theta0=-1.0, seed=1,
                         replacement=repl, momentum=mom, observers=observers(), block_size=256)
    simulate_sgd(fs, lr=0.05, batch_size=np.tile([3, 9], 30), n_steps=60, n_particles=300, theta0=-1.0, seed=2)
    for mom in (0.0, 0.5):
        simulate_sde(dw, lr=0.05, batch_size=4, sigma2=1.0, n_steps=60, n_particles=700, theta0=-1.0,
                     seed=3, momentum=mom, observers=observers(), dt=0.5)
    w2 = wells_2d()
    simulate_sde(w2, lr=0.05, batch_size=4, noise=ConstantCovariance([[1.0, 0.3], [0.3, 0.5]]), n_steps=40,
                 n_particles=300, theta0=[-1.5, 0.0], seed=4,
                 observers=[Histogram((np.linspace(-3, 3, 21), np.linspace(-3, 3, 11)))])
    rng = np.random.default_rng(0)
    ls = LeastSquares(rng.standard_normal((50, 3)), rng.standard_normal(50), l2=0.05)
    simulate_sde(ls, lr=0.05, batch_size=4, noise=StateDependent(), n_steps=40, n_particles=300,
                 theta0=np.zeros(3), seed=5)
    simulate_sgd(ls, lr=0.05, batch_size=5, n_steps=40, n_particles=300, theta0=np.zeros(3), seed=6)
    print("ok")
    """
)


def test_simulators_are_memory_safe_under_boundscheck():
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
