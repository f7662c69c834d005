"""``python -m validation``: the theory validation suite (the project's main job).

    python -m validation                 # every check, default sizes (< 10 min on 2 cores)
    python -m validation --quick         # same checks, smaller (CI)
    python -m validation --only gibbs minima_probabilities
    python -m validation --list
    python -m validation nets RESULTS_DIR   # DNN results -> paper figures + theory statements
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _main_checks(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m validation",
        description="Run the theory validation suite: Euler–Maruyama ensembles, exact minibatch SGD and "
        "Fokker–Planck solutions lined up against the analytic formulas of 'Three Factors Influencing "
        "Minima in SGD'. Writes <out>/report.md, <out>/report.json and one figure per check. "
        "Use 'python -m validation nets DIR' for the DNN experiments' results.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for CI: under 3 minutes)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these checks (see --list)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--out", type=Path, default=Path("validation-report"), help="report directory (default: validation-report)")
    parser.add_argument("--fig-dir", type=Path, default=None,
                        help="figure directory (default: figures/ for a default run, <out>/figures for --quick)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0); same seed, same numbers")
    parser.add_argument("--resume", action="store_true", help="skip checks already finished in <out> with the same mode and seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from validation.runner import format_table, load_checks, run

    if args.list:
        for name, check in load_checks().items():
            print(f"{name:28s} {check.title}  [{check.paper_ref}]")
        return 0
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    fig_dir = args.fig_dir or (args.out / "figures" if args.quick else Path("figures"))
    t0 = time.perf_counter()
    results = run(args.only, quick=args.quick, seed=args.seed, out_dir=args.out, fig_dir=fig_dir,
                  resume=args.resume, progress=not args.no_progress)
    print()
    print(format_table(results))
    n_pass = sum(r.passed for r in results)
    print(f"\n{n_pass}/{len(results)} checks passed in {time.perf_counter() - t0:.0f} s; "
          f"report: {args.out / 'report.md'}, figures: {fig_dir}/")
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
