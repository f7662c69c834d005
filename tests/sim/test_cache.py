"""Compiled kernels are cached on disk: a second process compiles nothing.

Two fresh interpreters run the same simulations (Euler–Maruyama with observers and constant
anisotropic noise, exact SGD without replacement, a basin classification) with one numba cache
directory; numba's compiler announces every compilation as a ``numba:compile`` event, and the
second process must see none."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba.core import event

    class Count(event.Listener):
        n = 0

        def on_start(self, ev):
            Count.n += 1

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Count()):
        from theory.landscapes import IsotropicNoiseFiniteSum, QuarticDoubleWell, wells_2d
        from sim.noise import ConstantCovariance
        from sim.observers import Basins, FirstPassage, Histogram, Record
        from sim.sde import simulate_sde
        from sim.sgd import simulate_sgd

        dw = QuarticDoubleWell(0.1)
        simulate_sde(dw, lr=0.05, batch_size=2, sigma2=1.0, n_steps=20, n_particles=50, theta0=-1.0, seed=0,
                     observers=[Histogram(np.linspace(-2, 2, 11)), FirstPassage(1, 0.2), Record(10), Basins(10)])
        simulate_sgd(IsotropicNoiseFiniteSum(dw, 100, 1.0), lr=0.05, batch_size=5, n_steps=20, n_particles=50,
                     theta0=-1.0, seed=0)
        w2 = wells_2d()
        simulate_sde(w2, lr=0.05, batch_size=1, noise=ConstantCovariance([[1.0, 0.2], [0.2, 0.5]]), n_steps=20,
                     n_particles=50, theta0=[-1.5, 0.0], seed=0)
        w2.basin_index(np.zeros((3, 2)))
    print("compilations", Count.n)
    """
)


def test_second_process_compiles_nothing(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    counts = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        counts.append(int(out.stdout.split("compilations")[-1]))
    assert counts[0] > 0 and counts[1] == 0, counts


def test_an_edit_of_any_source_file_renames_every_kernel(tmp_path):
    """A kernel inlines helpers from other files of theory and sim (the random-number generator,
    observers, noise models) that numba's cache does not track: the stamp in every kernel's name
    changes when any of those files changes (size or modification time), and only then."""
    from theory._numba import sources_stamp

    for rel in ("theory/a.py", "sim/rng.py", "sim/sub/obs.py", "docs/notes.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    before = sources_stamp(str(tmp_path))
    assert sources_stamp(str(tmp_path)) == before            # nothing changed: the same name
    (tmp_path / "docs/notes.md").write_text("longer text\n")    # not a source file of the kernels
    assert sources_stamp(str(tmp_path)) == before
    (tmp_path / "sim/sub/obs.py").write_text("x = 22\n")         # a helper, one directory down
    edited = sources_stamp(str(tmp_path))
    assert edited != before
    stat = os.stat(tmp_path / "sim/rng.py")
    os.utime(tmp_path / "sim/rng.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same size, touched
    assert sources_stamp(str(tmp_path)) != edited
