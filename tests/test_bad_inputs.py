"""Bad input, table-driven: each case must fail with a one-line message that names the parameter or
file at fault (and, for the command lines, exit 2 with the message on stderr), never a traceback,
never a silent result.

Rows: (id, call, expected pattern). ``call`` is either a list of command-line arguments for
``nets`` / ``validation`` (run in-process through their ``main``) or a Python callable for the API.
"""
from __future__ import annotations

import json
import re

import pytest
import torch

from nets import data as D


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root with tiny Fashion-MNIST files, a file where a directory is expected, a corrupt run."""
    r = tmp_path_factory.mktemp("bad")
    D.write_toy_idx_dataset(r / "fashion-mnist", n_train=400, n_test=150, seed=1)
    (r / "afile").write_text("not a directory")
    exp = r / "results" / "fig1" / "runs" / "broken"
    exp.mkdir(parents=True)
    (exp / "result.json").write_text('{"status": "comp')
    (r / "empty").mkdir()
    good = r / "good" / "fig1" / "runs" / "ok"
    good.mkdir(parents=True)
    (good / "result.json").write_text(json.dumps(dict(status="completed", config={}, history=dict(noise=[1e-3]),
                                                      final=dict(val_acc=0.8), measurements={})))
    return r


def _nets(args):
    from nets.__main__ import main
    return main(args)


def _validation(args):
    from validation.__main__ import main
    return main(args)


def _cli(kind, args, capsys):
    try:
        code = (_nets if kind == "nets" else _validation)(args)
    except SystemExit as exc:       # argparse errors exit 2 with usage + message on stderr
        code = exc.code
    out = capsys.readouterr()
    return code, out.err


# (id, command line or callable, pattern the one-line message must match)
NETS_CLI = [
    ("train lr 0", ["train", "--lr", "0", "--batch-size", "32"], r"--lr must be > 0"),
    ("train lr nan", ["train", "--lr", "nan", "--batch-size", "32"], r"--lr must be > 0"),
    ("train batch 0", ["train", "--lr", "0.1", "--batch-size", "0"], r"--batch-size must be >= 1"),
    ("train batch > N", ["train", "--lr", "0.1", "--batch-size", "100000", "--train-size", "256", "--val-size", "64",
                         "--data-root", "{root}"], r"batch_size must be <= the number of training samples N=256"),
    ("train epochs 0", ["train", "--lr", "0.1", "--batch-size", "8", "--epochs", "0"], r"--epochs must be >= 1"),
    ("train val-size > data", ["train", "--lr", "0.1", "--batch-size", "8", "--data-root", "{root}"],
     r"val_size must be in \[0, 400\), got 5000"),
    ("train unknown model", ["train", "--lr", "0.1", "--batch-size", "8", "--model", "mlp5", "--val-size", "64",
                             "--data-root", "{root}"], r"unknown model 'mlp5'"),
    ("train momentum 1", ["train", "--lr", "0.1", "--batch-size", "8", "--momentum", "1", "--val-size", "64",
                          "--data-root", "{root}"], r"momentum must lie in \[0, 1\)"),
    ("train missing root", ["train", "--lr", "0.1", "--batch-size", "8", "--data-root", "{root}/nope"],
     r"nope \(does not exist\)"),
    ("train wrong dataset", ["train", "--lr", "0.1", "--batch-size", "8", "--dataset", "imagenet"],
     r"dataset must be one of"),
    ("run unknown experiment", ["run", "fig99"], r"unknown experiment 'fig99'"),
    ("run unknown preset", ["run", "fig1", "--preset", "huge"], r"--preset: invalid choice: 'huge'"),
    ("run step path", ["run", "fig1", "--step-path", "graph"], r"--step-path: invalid choice: 'graph'"),
    ("run graph on cpu", ["run", "fig1", "--step-path", "cuda-graph", "--data-root", "{root}", "--out", "{root}/o1"],
     r"step_path 'cuda-graph' needs a CUDA device"),
    ("run cuda absent", ["run", "fig1", "--device", "cuda", "--data-root", "{root}"] if not torch.cuda.is_available()
     else ["run", "fig1", "--device", "tpu"], r"device .*(CUDA is not available|must be 'cpu')"),
    ("run out under a file", ["run", "fig1", "--data-root", "{root}", "--out", "{root}/afile/x", "--no-progress"],
     r"--out .*afile.*(a parent of it is a file|cannot write)"),
    ("run width on resnet", ["run", "fig2", "--dataset", "fashion-mnist", "--width", "8", "--data-root", "{root}",
                             "--out", "{root}/o2"], r"width applies to the MLP models only"),
    ("run eval size 0", ["run", "fig1", "--max-eval-size", "0"], r"--max-eval-size must be >= 1"),
    ("run epochs 0", ["run", "fig1", "--epochs", "0"], r"--epochs must be >= 1"),
    ("run threads 0", ["run", "fig1", "--threads", "0"], r"--threads must be >= 1"),
    ("run dask threads local", ["run", "fig1", "--dask-threads", "--data-root", "{root}"],
     r"--dask-threads needs --executor dask"),
    ("run missing dataset", ["run", "fig2", "--preset", "full", "--data-root", "{root}", "--out", "{root}/o3"],
     r"dataset 'cifar10' not found.*--dataset fashion-mnist"),
    ("table missing dir", ["table", "{root}/nope"], r"results directory .*nope does not exist"),
    ("table no results", ["table", "{root}/empty"], r"no run results under .*empty"),
    ("compare missing dir", ["compare", "{root}/nope", "{root}/results"], r"results directory .*nope does not exist"),
]

VALIDATION_CLI = [
    ("nets missing dir", ["nets", "{root}/nope"], r"results directory .*nope does not exist"),
    ("nets no results", ["nets", "{root}/empty"], r"no network results under .*empty"),
    ("nets out under a file", ["nets", "{root}/good", "--out", "{root}/afile/f"], r"--out .*afile"),
]


@pytest.mark.parametrize("case", NETS_CLI, ids=[c[0] for c in NETS_CLI])
def test_nets_cli(case, root, capsys):
    _, args, pattern = case
    code, err = _cli("nets", [a.format(root=root) for a in args], capsys)
    assert code == 2, err
    line = [ln for ln in err.strip().splitlines() if ln.strip()][-1]
    assert re.search(pattern, line), line
    assert "Traceback" not in err


@pytest.mark.parametrize("case", VALIDATION_CLI, ids=[c[0] for c in VALIDATION_CLI])
def test_validation_cli(case, root, capsys):
    _, args, pattern = case
    with pytest.warns(UserWarning) if args[1].endswith("results") else _nullcontext():
        code, err = _cli("validation", [a.format(root=root) for a in args], capsys)
    assert code == 2, err
    assert re.search(pattern, err.strip().splitlines()[-1]), err
    assert "Traceback" not in err


def _nullcontext():
    import contextlib
    return contextlib.nullcontext()


def _api_cases(root):
    from nets import experiments as E
    from nets import measure as M
    from nets import results as R
    from nets import train as T
    from nets.svag import SVAGRunConfig, svag_weights, validate_svag
    from sim.sgd import simulate_sgd
    from sim.svag import simulate_svag
    from theory._checks import check_output_dir
    from theory.landscapes import InterpolatingQuadratics, IsotropicNoiseFiniteSum, Quadratic

    finite = IsotropicNoiseFiniteSum(Quadratic([[1.0]]), 10, 1.0)

    def cfg(**kw):
        base = dict(name="r", model="mlp4_bn", model_kw=dict(width=8), data_kw=dict(val_size=50, train_size=200),
                    lr=0.05, batch_size=32, epochs=1)
        base.update(kw)
        return T.RunConfig(**base)

    return [
        ("RunConfig unknown field", lambda: T.RunConfig.from_dict(dict(lr=0.1, lrate=0.2)), r"unknown run-config fields "
                                                                                            r"\['lrate'\]"),
        ("loss_log_every < 0", lambda: T.validate(cfg(loss_log_every=-1), 200), r"loss_log_every must be an integer"),
        ("step path name", lambda: T.resolve_step_path("fast", "cpu"), r"step_path must be one of"),
        ("group too large", lambda: T.check_group_fits([cfg()], D.synthetic(n_train=64), "cpu", free=1),
         r"needs an estimated .* GiB on cpu but 0\.00 GiB are free"),
        ("measure spec key", lambda: T.validate(cfg(measure=dict(hesian=None)), 200), r"unknown key\(s\) 'hesian'"),
        ("rescale width 0", lambda: E.plan("fig1", "full", width=0), r"width must be an integer >= 1"),
        ("synthetic n_train 0", lambda: D.synthetic(n_train=0), r"n_train must be an integer >= 1"),
        ("load_experiment missing", lambda: R.find_experiments(root / "nope"), r"nope does not exist"),
        ("output dir is a file", lambda: check_output_dir("--out", root / "afile"), r"--out .*afile: a file of that name"),
        ("eigen k < 1", lambda: M.top_eigenpairs(lambda v: v, 5, k=0), r"k must be >= 1"),
        ("svag amplification 0", lambda: svag_weights(0), r"amplification must be an integer >= 1, got 0"),
        ("svag amplification 1.5", lambda: svag_weights(1.5), r"amplification must be an integer >= 1, got 1\.5"),
        ("svag with momentum", lambda: validate_svag(SVAGRunConfig(**cfg(momentum=0.9).to_dict(), amplification=2), 200),
         r"momentum must be 0 for SVAG"),
        ("simulate_svag amplification 0", lambda: simulate_svag(finite, lr=0.1, batch_size=2, amplification=0,
                                                                n_steps=1, n_particles=1, theta0=0.0, seed=0),
         r"amplification must be >= 1"),
        ("simulate_svag amplification 2.5", lambda: simulate_svag(finite, lr=0.1, batch_size=2, amplification=2.5,
                                                                  n_steps=1, n_particles=1, theta0=0.0, seed=0),
         r"amplification must be an integer"),
        ("one-sample non-uniformity", lambda: InterpolatingQuadratics([2.0]),
         r"per_sample_hessians must hold N >= 2 samples"),
        ("reshuffle with replacement", lambda: simulate_sgd(finite, lr=0.1, batch_size=2, n_steps=1, n_particles=1,
                                                            theta0=0.0, seed=0, replacement=True, reshuffle="step"),
         r"reshuffle='step' describes sampling without replacement"),
    ]


def test_api_bad_inputs(root):
    cases = _api_cases(root)
    assert len(NETS_CLI) + len(VALIDATION_CLI) + len(cases) >= 38
    for name, call, pattern in cases:
        with pytest.raises((ValueError, TypeError, MemoryError, FileNotFoundError)) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg.strip(), (name, msg)
        assert re.search(pattern, msg), (name, msg)


def test_corrupt_result_is_named_and_left_out(root):
    from nets import results as R
    with pytest.warns(UserWarning, match=r"broken/result\.json: unreadable run result"):
        exp = R.load_experiment(root / "results" / "fig1")
    assert exp["runs"] == {}
    assert json.loads((root / "results" / "fig1" / "runs" / "broken" / "result.json").read_text()[:0] or "null") is None


# ---- the theory validation suite's own bad inputs (python -m validation, validation.* API) -----------------
VALIDATION_SUITE_CLI = [
    ("validation unknown check", ["--only", "no_such_check", "--out", "{root}/v1"], r"unknown check\(s\): no_such_check"),
    ("validation seed < 0", ["--seed", "-1"], r"--seed must be >= 0, got -1"),
    ("validation out under a file", ["--only", "gibbs", "--out", "{root}/afile/v"], r"--out .*afile.*a parent of it is a file"),
    ("validation out is a file", ["--only", "gibbs", "--out", "{root}/afile"], r"--out .*afile: a file of that name"),
    ("validation fig-dir under a file", ["--only", "gibbs", "--out", "{root}/v2", "--fig-dir", "{root}/afile/f"],
     r"--fig-dir .*afile.*a parent of it is a file"),
    ("validation quick takes no value", ["--quick=yes"], r"--quick: ignored explicit argument 'yes'"),
]


@pytest.mark.parametrize("case", VALIDATION_SUITE_CLI, ids=[c[0] for c in VALIDATION_SUITE_CLI])
def test_validation_suite_cli(case, root, capsys):
    """Refused before any check is computed: exit 2, one line on stderr naming the option."""
    _, args, pattern = case
    code, err = _cli("validation", [a.format(root=root) for a in args], capsys)
    assert code == 2, err
    assert re.search(pattern, err.strip().splitlines()[-1]), err
    assert "Traceback" not in err


def _validation_api_cases(root):
    import numpy as np

    from validation import core, io as vio, runner

    class Probe(core.Check):
        name = "bad_input_probe"
        title, claim, paper_ref, sabotage = "probe", "probe", "probe", "probe"

    core.REGISTRY.pop("bad_input_probe", None)
    ctx = core.Context(Probe(), quick=True, seed=0)

    def define(**attrs):
        return type("Bad", (core.Check,), {**dict(name="bad_input_probe2", title="t", claim="c", paper_ref="p"), **attrs})

    (root / "notnpz.npz").write_bytes(b"PK\x03\x04garbage")
    return [
        ("validation select unknown", lambda: runner.select(["gibs"]), r"unknown check\(s\): gibs; available: .*gibbs"),
        ("compare tolerance 0", lambda: ctx.compare("c", measured=1.0, predicted=1.0, wrong_prediction=2.0,
                                                    wrong_name="w", tolerance=0.0, derivation="d"),
         r"tolerance of 'c' must be finite and > 0, got 0.0"),
        ("compare tolerance nan", lambda: ctx.compare("c", measured=1.0, predicted=1.0, wrong_prediction=2.0,
                                                      wrong_name="w", tolerance=float("nan"), derivation="d"),
         r"tolerance of 'c' must be finite and > 0, got nan"),
        ("compare unnamed wrong prediction", lambda: ctx.compare("c", measured=1.0, predicted=1.0, wrong_prediction=2.0,
                                                                 wrong_name="", tolerance=1.0, derivation="d"),
         r"wrong_name must name the wrong prediction"),
        ("compare unknown metric", lambda: ctx.compare("c", measured=1.0, predicted=1.0, wrong_prediction=2.0,
                                                       wrong_name="w", tolerance=1.0, derivation="d", metric="L2"),
         r"metric must be one of"),
        ("compare max_z without stderr", lambda: ctx.compare("c", measured=1.0, predicted=1.0, wrong_prediction=2.0,
                                                             wrong_name="w", tolerance=1.0, derivation="d",
                                                             metric="max_z"), r"metric 'max_z' needs stderr"),
        ("check without sabotage", lambda: define(), r"check 'bad_input_probe2' must set the class attribute 'sabotage'"),
        ("check name taken", lambda: define(sabotage="s", name="gibbs"), r"check name 'gibbs' registered twice"),
        ("corrupt npz", lambda: vio.load_npz(root / "notnpz.npz"), r"notnpz\.npz: not a readable \.npz file"),
        ("npz object array", lambda: vio.save_npz(root / "o.npz", dict(x=np.array([{}], dtype=object))),
         r"array 'x' has dtype object"),
        ("comparisons table missing", lambda: runner.load_comparisons(root / "nope"), r"nope/comparisons\.csv does not exist"),
    ]


def test_validation_api_bad_inputs(root):
    from validation.checks import load

    load()
    cases = _validation_api_cases(root)
    for name, call, pattern in cases:
        with pytest.raises((ValueError, TypeError, FileNotFoundError)) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg.strip(), (name, msg)
        assert re.search(pattern, msg), (name, msg)


# ---------------------------------------------------------------------------------------------
# sim and theory API: corrupt result files, sizes that cannot fit, runs that cannot give statistics
# ---------------------------------------------------------------------------------------------
def _result_files(root):
    """One good SimResult file and broken variants of it (the cases a user meets: a copy cut short,
    an empty or foreign file, arrays that disagree, a missing array, metadata that is not JSON, a
    non-diverged particle whose state is NaN)."""
    import numpy as np

    from sim.results import SimResult

    d = root / "results-npz"
    d.mkdir(exist_ok=True)
    good = SimResult(final=np.zeros((4, 2)), diverged=np.zeros(4, bool), diverged_step=np.full(4, -1),
                     params={"seed": 1})
    good.save(d / "good.npz")
    raw = (d / "good.npz").read_bytes()
    (d / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "random.npz").write_bytes(np.random.default_rng(0).bytes(400))
    meta = np.array(json.dumps(dict(params={}, histogram_outside=0, histogram_samples=0, n_histogram_edges=0,
                                    format="sim.SimResult/1")))
    ok = dict(final=np.zeros((4, 2)), diverged=np.zeros(4, bool), diverged_step=np.full(4, -1), __meta__=meta)
    for name, arrays in {
        "inconsistent": dict(ok, diverged=np.zeros(3, bool)),
        "nofinal": {k: v for k, v in ok.items() if k != "final"},
        "badjson": dict(ok, __meta__=np.array("{params: ")),
        "nan": dict(ok, final=np.full((4, 2), np.nan)),
    }.items():
        with open(d / f"{name}.npz", "wb") as fh:
            np.savez(fh, **arrays)
    return d


def _sim_theory_cases(root):
    import numpy as np

    from sim import chain, fokker_planck as fp
    from sim.observers import Record
    from sim.results import SimResult
    from sim.sde import simulate_sde
    from sim.sgd import simulate_sgd
    from theory import minima, noise_geometry, scaling, stability
    from theory.landscapes import IsotropicNoiseFiniteSum, Quadratic, double_well_1d, wells_2d

    d = _result_files(root)
    well = double_well_1d()
    data = IsotropicNoiseFiniteSum(well, n_samples=20, sigma2=1.0)
    run = dict(lr=0.1, batch_size=1, n_steps=10, theta0=0.0, seed=0)
    dead = SimResult(final=np.zeros((50, 1)), diverged=np.ones(50, bool), diverged_step=np.zeros(50, np.int64))
    return [
        ("load truncated", lambda: SimResult.load(d / "trunc.npz"),
         r"trunc\.npz: a truncated or damaged \.npz archive"),
        ("load empty", lambda: SimResult.load(d / "empty.npz"), r"empty\.npz: the file is empty"),
        ("load random bytes", lambda: SimResult.load(d / "random.npz"), r"random\.npz: not an \.npz archive"),
        ("load inconsistent", lambda: SimResult.load(d / "inconsistent.npz"),
         r"inconsistent\.npz: inconsistent arrays: diverged must be a bool array of shape \(4,\)"),
        ("load missing array", lambda: SimResult.load(d / "nofinal.npz"), r"nofinal\.npz: missing array\(s\) final"),
        ("load bad metadata", lambda: SimResult.load(d / "badjson.npz"),
         r"badjson\.npz: its metadata .* not valid JSON"),
        ("load NaN state", lambda: SimResult.load(d / "nan.npz"), r"nan\.npz: .*not flagged as diverged have NaN"),
        ("load missing file", lambda: SimResult.load(d / "nope.npz"), r"nope\.npz: no such file"),
        ("sde 1e12 particles", lambda: simulate_sde(well, **run, sigma2=1.0, n_particles=10**12),
         r"n_particles = 1000000000000: .* needs at least .* available"),
        ("sgd 1e12 particles", lambda: simulate_sgd(data, **run, n_particles=10**12),
         r"n_particles = 1000000000000: .* needs at least"),
        ("sde 1e13 steps", lambda: simulate_sde(well, **dict(run, n_steps=10**13), sigma2=1.0, n_particles=10),
         r"n_steps = 10000000000000: the per-step schedules"),
        ("record every step", lambda: simulate_sde(well, **dict(run, n_steps=10**7), sigma2=1.0, n_particles=10**5,
                                                   observers=[Record(1)]),
         r"Record every = 1: the recorded trajectory"),
        ("2-D grid 1e6 per side", lambda: fp.Grid2D([-1, -1], [1, 1], 10**6), r"n_cells = \(1000000, 1000000\)"),
        ("chain 1e9 nodes", lambda: chain.EulerChain1D.on_nodes(well, -3, 3, lr=0.1, step_sd=0.1, n=10**9),
         r"n = 1000000000: the chain's transfer matrix"),
        ("quadrature n_grid", lambda: minima.basin_probabilities(wells_2d(), lr=0.1, batch_size=1, sigma2=1.0,
                                                                 n_grid=10**7), r"n_grid = 10000000"),
        ("finite sum 1e12 samples", lambda: IsotropicNoiseFiniteSum(well, n_samples=10**12, sigma2=1.0),
         r"n_samples = 1000000000000"),
        ("schedule 1e13 steps", lambda: scaling.schedule_values("constant", 10**13, base=0.1),
         r"n_steps = 10000000000000"),
        ("chain on 2-D", lambda: chain.relaxation_steps(wells_2d(), lr=0.1, batch_size=1, sigma2=1.0),
         r"landscape must be 1-D .* got dim = 2"),
        ("equilibrate tol 0", lambda: chain.steps_to_equilibrate(well, lr=0.1, batch_size=1, sigma2=1.0, tol=0),
         r"tol must lie in \(0\.0, 1\.0\)"),
        ("mean of all diverged", lambda: dead.mean(), r"mean: all 50 particles diverged"),
        ("basins of all diverged", lambda: dead.basin_probabilities(Quadratic([[1.0]])),
         r"basin_probabilities: all 50 particles diverged"),
        ("basins not recorded", lambda: dead.basin_probabilities(), r"this run recorded no basins"),
        ("sgd batch > N", lambda: simulate_sgd(data, **dict(run, batch_size=21), n_particles=4),
         r"batch_size must be <= n_samples = 20"),
        ("second-moment operator d = 1000", lambda: stability.second_moment_operator(
            np.stack([np.eye(1000), 2 * np.eye(1000)]), lr=0.1, batch_size=1), r"hessians = 2 Hessians of dimension 1000"),
        ("linear operator d = 1000", lambda: noise_geometry.linear_sgd_second_moment_operator(
            np.ones((3, 1000)), lr=0.1, batch_size=1), r"inputs = 3 x 1000 array: .*linear_sgd_escape_profile"),
        ("fp noise_cov not PD", lambda: fp.solve_stationary(wells_2d(), fp.Grid2D([-3, -3], [3, 3], 30), lr=0.1,
                                                            batch_size=1, noise_cov=[[1, 2], [2, 1]]),
         r"noise_cov must be symmetric positive definite"),
    ]


SIM_THEORY_ROWS = 26


@pytest.fixture(scope="module")
def sim_theory_cases(root):
    cases = _sim_theory_cases(root)
    assert len(cases) == SIM_THEORY_ROWS
    return cases


def test_bad_input_rows_in_all(root):
    """At least 40 bad inputs across the API and both command lines."""
    assert len(NETS_CLI) + len(VALIDATION_CLI) + len(VALIDATION_SUITE_CLI) + len(_api_cases(root)) + SIM_THEORY_ROWS >= 40


@pytest.mark.parametrize("row", range(SIM_THEORY_ROWS))
def test_sim_theory_api(row, sim_theory_cases):
    name, call, pattern = sim_theory_cases[row]
    try:
        call()
    except (ValueError, TypeError, MemoryError, FileNotFoundError) as exc:
        message = str(exc)
    else:
        pytest.fail(f"{name}: no error")
    assert "\n" not in message.strip() and re.search(pattern, message), (name, message)
