"""The ``mbk`` command line (also ``python -m mbk``).

    mbk demo [--out DIR] [--rows N] [--export PATH] [--force] [--seed N] [--threads N]

Exit codes: 0 done; 1 an unexpected error (its message is printed, no traceback); 2 a usage
error (argparse's); 3 an output file exists (``--force`` overwrites it).
"""

import argparse
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_EXISTS = 0, 1, 2, 3


def _parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mbk",
        description="Fast mini-batch k-means: scikit-learn's MiniBatchKMeans results, faster.",
        epilog="Exit codes: 0 done, 1 error, 2 usage error, 3 output exists (use --force).",
    )
    parser.add_argument("--version", action="version", version=f"mbk {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="cluster the California housing table (shipped with mbk) and show the result",
        description=(
            "Cluster the 20,640 districts of the California housing table on median_income, "
            "latitude and longitude into 6 clusters; print the first rows with their Cluster "
            "and a summary per cluster; write housing_clusters.csv and, with matplotlib, a "
            "map (housing_clusters.png) to --out; with scikit-learn, time its fit beside "
            "mbk's and say whether the clusters are identical."
        ),
    )
    demo.add_argument("--out", metavar="DIR",
                      help="folder for the outputs (default: a new folder mbk-demo, mbk-demo-2, "
                           "... in the working directory)")  # fmt: skip
    demo.add_argument("--rows", type=_positive, metavar="N",
                      help="cluster N generated rows instead (a speed comparison; writes "
                           "nothing)")  # fmt: skip
    demo.add_argument("--export", metavar="PATH",
                      help="write the housing table itself (CSV, ten columns) to PATH and stop "
                           "(the quick start's next step reads it)")  # fmt: skip
    demo.add_argument("--force", action="store_true", help="overwrite existing output files")
    demo.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    demo.add_argument("--threads", type=_positive, metavar="N",
                      help="threads (default: every usable core)")  # fmt: skip
    return parser


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _demo(args):
    from . import _demo, _files
    from .datasets import housing_csv_bytes

    if args.export is not None:
        _files.write_atomically(args.export, lambda out: out.write(housing_csv_bytes()),
                                args.force)  # fmt: skip
        print(f"wrote {args.export} (the California housing table, 20,640 rows)")
        return EXIT_OK
    out_dir = args.out if args.out is not None else _demo.new_output_dir()
    _demo.run(out_dir, rows=args.rows, seed=args.seed, n_threads=args.threads,
              force=args.force)  # fmt: skip
    return EXIT_OK


def main(argv=None):
    """Run the command line; returns the exit code."""
    from ._files import OutputExists

    args = _parser().parse_args(argv)
    try:
        return _demo(args)
    except OutputExists as error:
        print(f"mbk: {error} exists; use --force to overwrite it.", file=sys.stderr)
        return EXIT_EXISTS
    except (OSError, ValueError, MemoryError) as error:
        print(f"mbk: {error}", file=sys.stderr)
        return EXIT_ERROR


def entry_point():
    """The console script: exit with main's code."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
