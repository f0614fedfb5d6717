"""``python -m training.lab``: the convergence lab's command line.

    python -m training.lab dirac [--steps N --lr H --gamma G --mode simultaneous|alternating|both
                                  --settings a,b --start THETA,PSI --gp-weight L --plot PATH]
    python -m training.lab rings [--settings a,b --steps N --seeds 0,1,2 --batch-size B --out DIR]

``dirac`` prints the Dirac-GAN distances (Mescheder et al. 2018) as JSON. ``rings`` trains the
eight-Gaussians settings (Metz et al. 2016), prints a JSON summary and writes
``DIR/convergence.md`` (both experiments) and ``DIR/images/convergence/*.png``.
Arguments are checked before TensorFlow is imported; a bad value is reported as one
``error:`` line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

DIRAC_MODES = ("simultaneous", "alternating", "both")
# Mirrors of training.lab.dirac's defaults, so that --help needs no TensorFlow import
# (tests/test_lab.py checks that they agree).
DIRAC_SETTINGS = ("minimax", "non_saturating", "wasserstein", "wasserstein_gp", "minimax_r1")
DIRAC_DEFAULTS = {"steps": 500, "lr": 0.1, "gamma": 1.0, "gp_weight": 1.0, "start": (1.0, 1.0)}


class LabArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit status 2)."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


# --- Argument types ------------------------------------------------------------------------------


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def name_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def seed_list(text):
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        seeds = [-1]
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"expected distinct non-negative integer seeds such as 0,1,2, got {text!r}"
        )
    return seeds


def start_point(text):
    try:
        theta, psi = (float(value) for value in text.split(","))
    except ValueError:
        theta, psi = 0.0, 0.0
    finite = all(abs(value) < float("inf") for value in (theta, psi))
    if (theta, psi) == (0.0, 0.0) or not finite:
        raise argparse.ArgumentTypeError(
            f"expected a finite THETA,PSI other than the equilibrium 0,0, got {text!r}"
        )
    return theta, psi


# --- Parser --------------------------------------------------------------------------------------


def build_parser():
    parser = LabArgumentParser(
        prog="python -m training.lab",
        description="Convergence lab: Dirac-GAN dynamics (Mescheder et al. 2018) and the "
        "eight-Gaussians mode-collapse benchmark (Metz et al. 2016).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{dirac,rings}")
    add_dirac_arguments(
        commands.add_parser(
            "dirac",
            help="Dirac-GAN gradient dynamics; prints distances to the equilibrium as JSON",
            description="Train the Dirac-GAN (data: a Dirac at 0, G: x = theta, D(x) = psi * x) "
            "by gradient descent for each setting and print the initial, final and maximum "
            "distance sqrt(theta^2 + psi^2) from the equilibrium (0, 0) as JSON.",
            epilog="example: python -m training.lab dirac --steps 1000 --mode simultaneous "
            "--plot dirac.png",
        )
    )
    add_rings_arguments(
        commands.add_parser(
            "rings",
            help="eight Gaussians on a ring; writes OUT/convergence.md and scatter plots",
            description="Train every setting of the eight-Gaussians table (or --settings) with "
            "AdversarialModel, measure modes covered and high-quality share on 2,500 samples, "
            "and write OUT/convergence.md (with the Dirac-GAN at its defaults) and one scatter "
            "plot per setting under OUT/images/convergence/.",
            epilog="example: python -m training.lab rings --settings non_saturating,ns_r1 "
            "--steps 2000 --seeds 0,1 --out /tmp/lab. The full table (11 settings x 3 seeds) "
            "takes about 15 minutes on 2 CPU cores shared with other jobs.",
        )
    )
    return parser


def add_dirac_arguments(parser):
    defaults = DIRAC_DEFAULTS
    parser.add_argument(
        "--settings",
        type=name_list,
        help=f"comma-separated settings (default: all of {', '.join(DIRAC_SETTINGS)})",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=defaults["steps"], help="gradient steps (%(default)s)"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=defaults["lr"], help="learning rate h (%(default)s)"
    )
    parser.add_argument(
        "--gamma",
        type=positive_float,
        default=defaults["gamma"],
        help="R1 weight gamma of minimax_r1 (%(default)s)",
    )
    parser.add_argument(
        "--gp-weight",
        type=positive_float,
        default=defaults["gp_weight"],
        help="gradient-penalty weight lambda of wasserstein_gp (%(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=DIRAC_MODES,
        default="both",
        help="simultaneous or alternating gradient descent, or both (%(default)s)",
    )
    parser.add_argument(
        "--start",
        type=start_point,
        default=defaults["start"],
        metavar="THETA,PSI",
        help="starting point (1,1)",
    )
    parser.add_argument("--plot", metavar="PATH", help="write the trajectories as a PNG")


def add_rings_arguments(parser):
    parser.add_argument(
        "--settings", type=name_list, help="comma-separated settings (default: all; see --list)"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        help="training steps per run, each n_critic D steps and one G step (default: the table's)",
    )
    parser.add_argument(
        "--seeds", type=seed_list, help="comma-separated seeds (default: the table's, 0,1,2)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="samples per D and per G step (default 256)"
    )
    parser.add_argument("--out", default="docs", help="output directory (%(default)s)")
    parser.add_argument("--list", action="store_true", help="list the settings and exit")


# --- Commands ------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence stderr at the file-descriptor level (TensorFlow's C++ start-up messages)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_lab():
    """Import the lab (and TensorFlow) without TensorFlow's native start-up messages."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing logs e.g. "failed call to cuInit"
        from training.lab import dirac, rings
    return dirac, rings


def check_names(names, table, parser):
    unknown = [name for name in names or () if name not in table]
    if unknown:
        parser.error(f"--settings: unknown setting(s) {unknown}; choose from {list(table)}")


def run_dirac(args, parser):
    dirac, _ = import_lab()
    check_names(args.settings, dirac.SETTINGS, parser)
    modes = dirac.MODES if args.mode == "both" else (args.mode,)
    summary, trajectories = dirac.run(
        args.settings, modes, args.steps, args.lr, args.start, args.gamma, args.gp_weight
    )
    if args.plot:
        os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
        dirac.plot(trajectories, args.plot, f"Dirac-GAN, h={args.lr}, {args.steps} steps")
        summary["plot"] = args.plot
    print(json.dumps(summary, indent=2))
    return 0


def run_rings(args, parser):
    dirac, rings = import_lab()
    if args.list:
        for setting in rings.SETTINGS.values():
            print(f"{setting.name:20s} {setting.description}")
        return 0
    check_names(args.settings, rings.SETTINGS, parser)
    start = time.perf_counter()
    batch_size = args.batch_size or rings.BATCH_SIZE
    runs = rings.run(args.settings, args.steps, args.seeds, batch_size, log=log)
    rings_seconds = time.perf_counter() - start
    write_report(args, dirac, rings, runs, rings_seconds, start)
    summary = {"rings": rings.aggregate(runs), "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary, indent=2))
    return 0


def write_report(args, dirac, rings, runs, rings_seconds, start):
    """Plots, the Dirac-GAN at its defaults, and ``OUT/convergence.md``."""
    from training.files import atomic_write_bytes
    from training.lab import report

    image_dir = os.path.join(args.out, "images", "convergence")
    os.makedirs(image_dir, exist_ok=True)
    images = rings.plot_all(runs, image_dir)
    dirac_summary, trajectories = dirac.run()
    title = f"Dirac-GAN, h={dirac.LEARNING_RATE}, {dirac.STEPS} steps"
    dirac.plot(trajectories, os.path.join(image_dir, "dirac.png"), title)
    rows = rings.aggregate(runs)
    total = time.perf_counter() - start
    text = report.render(dirac, rings, rows, dirac_summary, images, args, rings_seconds, total)
    atomic_write_bytes(os.path.join(args.out, "convergence.md"), text.encode())


def log(line):
    print(line, file=sys.stderr, flush=True)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    command = run_dirac if args.command == "dirac" else run_rings
    return command(args, parser)


if __name__ == "__main__":
    sys.exit(main())
