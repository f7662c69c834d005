"""Package boundaries: torch is a dependency of `nets` only."""
import subprocess
import sys


def test_theory_sim_validation_core_do_not_import_torch():
    code = (
        "import sys, theory, sim, sim.sde, sim.sgd, sim.engine, sim.observers, sim.noise, sim.fokker_planck, theory.landscapes, "
        "validation.core, validation.runner; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_public_theory_names():
    import theory

    for name in ("temperature", "log_density", "log_weight", "log_ratio", "probabilities", "threshold_noise",
                 "basin_probabilities", "stationary_covariance", "stationary_variance", "finite_data_noise_factor",
                 "lr_schedule_to_batch_schedule", "rescaled_time"):
        assert callable(getattr(theory, name)), name
