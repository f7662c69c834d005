"""``python -m validation`` (installed as ``three-factors-validation``): the theory validation suite.

    python -m validation                      # every check, default sizes (~90 s on 2 quiet cores)
    python -m validation --quick              # same checks, smaller (CI)
    python -m validation --only gibbs minima_probabilities --out DIR
    python -m validation --list
    python -m validation nets RESULTS_DIR     # DNN results -> paper figures + theory statements
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_CODES = """subcommands:
  nets RESULTS_DIR [--out DIR]   network results (python -m nets run ... --out RESULTS_DIR) -> the paper's
                                 figures, theory statements and a CSV table per experiment
                                 (python -m validation nets --help)

outputs (all under --out):
  report.md, report.json, comparisons.csv (a row per comparison), checks/NAME.json and checks/NAME.npz
  (each check's result and data), figures/NAME.png (or --fig-dir)

exit codes:
  0  every selected check passed
  1  a check failed (a comparison out of tolerance, a wrong prediction not rejected, or a crash)
  2  bad input: an option, an unknown check, an output directory that cannot be written"""


def _prog() -> str:
    name = os.path.basename(sys.argv[0])
    return name if name.startswith("three-factors") else "python -m validation"


def build_parser() -> argparse.ArgumentParser:
    from nets.__main__ import version

    prog = _prog()
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [-h] [--version] [--quick] [--only NAME [NAME ...]] [--list] [--out DIR] [--fig-dir DIR]\n"
              f"{' ' * (len(prog) + 7)}[--seed N] [--resume] [--no-progress]\n"
              f"       {prog} nets RESULTS_DIR [--out DIR]",
        description="Run the theory validation suite: Euler–Maruyama ensembles, exact minibatch SGD and "
        "Fokker–Planck solutions lined up against the analytic formulas of 'Three Factors Influencing Minima in SGD'; every "
        "comparison also names a wrong prediction that the same data must reject.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for CI: well under a minute of compute)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these checks (see --list)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--out", type=Path, default=Path("validation-report"),
                        help="output directory for everything (default: validation-report)")
    parser.add_argument("--fig-dir", type=Path, default=None,
                        help="put the figures here instead of OUT/figures (e.g. the repository's figures/)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0); same seed, same numbers")
    parser.add_argument("--resume", action="store_true",
                        help="skip checks already finished in OUT with the same mode and seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    return parser


def _main_checks(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from theory._checks import check_output_dir
    from validation.runner import format_table, load_checks, run, select

    if args.list:
        for name, check in load_checks().items():
            print(f"{name:24s} {check.title}  [{check.paper_ref}]")
        return 0
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    try:
        select(args.only)
        check_output_dir("--out", args.out)
        check_output_dir("--out", args.out / "checks")
        if args.fig_dir is not None:
            check_output_dir("--fig-dir", args.fig_dir)
        else:
            check_output_dir("--out", args.out / "figures")
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = run(args.only, quick=args.quick, seed=args.seed, out_dir=args.out, fig_dir=args.fig_dir,
                  resume=args.resume, progress=not args.no_progress)
    print(format_table(results))
    n_pass = sum(r.passed for r in results)
    fig_dir = args.fig_dir if args.fig_dir is not None else args.out / "figures"
    print(f"\n{n_pass}/{len(results)} checks passed in {time.perf_counter() - t0:.0f} s; report: "
          f"{args.out / 'report.md'}, table: {args.out / 'comparisons.csv'}, figures: {fig_dir}/")
    for r in results:
        if r.error:
            print(f"\n[{r.name}] crashed:\n{r.error}", file=sys.stderr)
    return 0 if n_pass == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "nets":
        from validation import nets

        return nets.main(argv[1:])
    return _main_checks(argv)


if __name__ == "__main__":
    sys.exit(main())
