"""The ``mbk`` command line (also ``python -m mbk``).

    mbk demo [--out DIR] [--rows N] [--export PATH] [--force] [--seed N] [--threads N]
    mbk fit DATA [--clusters K] [--columns a,b,c] [--out OUT] [--model MODEL] [--plot PNG] ...
    mbk predict MODEL DATA --out OUT
    mbk info MODEL

Errors are one line on stderr (no traceback) with an exit code per kind (EXIT_CODES; the
README has the table).
"""

import argparse
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_EXISTS = 0, 1, 2, 3
# Every exit code, for --help and the README (the data's own are raised by _tables and
# _commands with their code).
EXIT_CODES = {
    0: "done",
    1: "any other error (the message says which), e.g. a missing optional library",
    2: "usage error (a bad option or value)",
    3: "an output file exists (--force overwrites it)",
    4: "an input file is missing or cannot be read",
    5: "unknown file format (by extension), or a malformed file",
    6: "a column asked for is not in the data (the message names those that are)",
    7: "a column to cluster on is not numeric",
    8: "rows with missing values (NaN or empty) in the chosen columns; --dropna drops them",
    9: "more clusters than rows",
    10: "the model file is not a valid mbk model file",
}


def _parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mbk",
        description=(
            "Fast mini-batch k-means: scikit-learn's MiniBatchKMeans results, faster. Start "
            "with 'mbk demo'; then 'mbk demo --export housing.csv' and 'mbk fit housing.csv "
            "--clusters 6 --columns median_income,latitude,longitude --out clusters.csv "
            "--model housing.mbk --plot map.png'."
        ),
        epilog="exit codes:\n"
        + "\n".join(f"  {code:>2}  {what}" for code, what in EXIT_CODES.items()),  # fmt: skip
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    _fit_parser(commands)
    _predict_parser(commands)
    info = commands.add_parser(
        "info", help="describe a model file",
        description="Print a model file's parameters, features, sizes, the mbk version that "
                    "wrote it and how it was fitted.",
    )  # fmt: skip
    info.add_argument("model", metavar="MODEL", help="a model file (from mbk fit --model)")
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    return parser


_FORMATS_HELP = "CSV (.csv, .csv.gz), Parquet (.parquet, needs pyarrow) or NumPy (.npy)"


def _data_arguments(command):
    command.add_argument("--delimiter", metavar="CHAR",
                         help="the CSV field delimiter (default ,)")  # fmt: skip
    command.add_argument("--dropna", action="store_true",
                         help="leave out rows with missing values (and say how many) instead "
                              "of stopping")  # fmt: skip
    command.add_argument("--force", action="store_true", help="overwrite existing output files")
    command.add_argument("--json", action="store_true",
                         help="print a machine-readable summary (JSON), not the table")  # fmt: skip


def _fit_parser(commands):
    fit = commands.add_parser(
        "fit", help="cluster the rows of a table and write them with a Cluster column",
        description=(
            f"Cluster the rows of DATA ({_FORMATS_HELP}). Without --columns every numeric "
            "column is used (the others are named). Prints the rows and share per cluster, "
            "the centers in the data's units, the inertia, steps and time; writes the rows "
            "with a Cluster column to --out (CSV or Parquet by extension; labels alone for "
            ".npy), the model to --model, a plot of the clusters to --plot."
        ),
    )  # fmt: skip
    fit.add_argument("data", metavar="DATA", help="the table to cluster")
    fit.add_argument("--clusters", type=_positive, default=8, metavar="K",
                     help="number of clusters (default 8)")  # fmt: skip
    fit.add_argument("--columns", metavar="A,B,C",
                     help="the columns to cluster on, comma-separated (.npy: 0,1,...)")  # fmt: skip
    fit.add_argument("--weights", metavar="COLUMN", help="a column of row weights")
    fit.add_argument("--scale", choices=("none", "standard"), default="none",
                     help="standard: cluster on columns scaled to mean 0 and variance 1 "
                          "(the model file keeps the scaling; mbk predict applies it)")  # fmt: skip
    fit.add_argument("--algorithm", choices=("sculley", "nested"), default="sculley",
                     help="sculley (scikit-learn's algorithm, the default) or nested")  # fmt: skip
    fit.add_argument("--init", choices=("k-means++", "random"), default="k-means++")
    fit.add_argument("--batch-size", type=_positive, default=1024, metavar="N")
    fit.add_argument("--max-iter", type=_positive, default=100, metavar="N",
                     help="passes over the data at most (default 100)")  # fmt: skip
    fit.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    fit.add_argument("--threads", type=_positive, metavar="N",
                     help="threads (default: every usable core)")  # fmt: skip
    fit.add_argument("--out", metavar="OUT", help="write the rows with a Cluster column here")
    fit.add_argument("--model", metavar="MODEL", help="save the fitted model here")
    fit.add_argument("--plot", metavar="PNG",
                     help="draw the clusters (a map for longitude, latitude)")  # fmt: skip
    fit.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    _data_arguments(fit)


def _predict_parser(commands):
    predict = commands.add_parser(
        "predict", help="label the rows of a table with a saved model",
        description=(
            f"Label the rows of DATA ({_FORMATS_HELP}) with the model in MODEL (from mbk fit "
            "--model, which also keeps the columns and any scaling) and write them with a "
            "Cluster column to --out."
        ),
    )  # fmt: skip
    predict.add_argument("model", metavar="MODEL", help="a model file")
    predict.add_argument("data", metavar="DATA", help="the table to label")
    predict.add_argument("--out", metavar="OUT", required=True,
                         help="write the rows with a Cluster column here")  # fmt: skip
    _data_arguments(predict)


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


def _run(args):
    if args.command == "demo":
        return _demo(args)
    from . import _commands

    getattr(_commands, args.command)(args, print)
    return EXIT_OK


def main(argv=None):
    """Run the command line; returns the exit code."""
    from ._files import OutputExists
    from ._tables import DataError

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except OutputExists as error:
        print(f"mbk: {error} exists; use --force to overwrite it.", file=sys.stderr)
        return EXIT_EXISTS
    except DataError as error:
        print(f"mbk: {error}", file=sys.stderr)
        return error.exit_code
    except (OSError, ValueError, TypeError, MemoryError, ImportError) as error:
        print(f"mbk: {error}", file=sys.stderr)
        return EXIT_ERROR


def entry_point():
    """The console script: exit with main's code."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
