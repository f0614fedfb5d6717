"""Train any registered GAN: ``python -m training.train MODEL --dataset NAME --out RUN_DIR``.

The model's kind (``zoo.kinds``) supplies what differs between kinds of model: the data sets
it trains on, the hyper-parameters they fix, the held-out split scored after each epoch
(``val_*`` columns) and the sample grid. A run directory holds everything about a run:

    RUN_DIR/config.json          resolved configuration (model defaults, overridden by flags)
    RUN_DIR/samples/epoch_NNN.png  after each epoch: samples of a fixed noise batch, or
                                 translations of fixed held-out examples (input, output, target)
    RUN_DIR/logs/                TensorBoard scalars and sample images
    RUN_DIR/checkpoints/         whole-model checkpoint after each epoch (resume point)
    RUN_DIR/state.json           last completed epoch and its checkpoint
    RUN_DIR/history.csv          per-epoch losses, seconds and images per second
    RUN_DIR/model.keras          the final model (``keras.saving.load_model`` after ``import zoo``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import keras
import tensorflow as tf

import zoo
from training import data, distribute, image_pairs
from training.callbacks import ResumableCheckpoint, StopOnNonFiniteLoss, latest_checkpoint
from training.files import atomic_save_model, atomic_write_json
from zoo.kinds import get_kind

STRATEGIES = distribute.STRATEGIES


class ConfigError(ValueError):
    """A bad model, dataset, value or run directory: reported as one line by the CLI."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped at its last good checkpoint."""


# --- Configuration -------------------------------------------------------------------------------


def resolve_config(
    model,
    dataset,
    epochs,
    steps_per_epoch=None,
    batch_size=None,
    hyperparameters=None,
    learning_rate=None,
    jit_compile=False,
    seed=0,
    data_dir=None,
    strategy="default",
    init_from=None,
    mixed_precision=False,
    sync_batch_norm=False,
):
    """The full configuration of a run: the model's registered defaults overridden by arguments."""
    try:
        spec = zoo.get_spec(model)
        kind = get_kind(spec.kind)
        data_hyperparameters = kind.data_hyperparameters(spec, dataset)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    hyperparameters = {**spec.defaults, **data_hyperparameters, **(hyperparameters or {})}
    unknown = sorted(set(hyperparameters) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            f"Unknown hyper-parameter(s) {unknown} for {model!r}; known: {sorted(spec.defaults)}."
        )
    if hyperparameters.get("seed") is None:
        hyperparameters["seed"] = seed
    training = json.loads(json.dumps(spec.training))  # deep copy
    if batch_size is not None:
        training["batch_size"] = batch_size
    _check_positive(epochs=epochs, batch_size=training["batch_size"],
                    steps_per_epoch=steps_per_epoch or 1)
    try:
        kind.check_data_fits(spec, dataset, hyperparameters, data_hyperparameters)
        if steps_per_epoch is None:  # one pass over the training split
            images_per_step = training["batch_size"] * hyperparameters.get("n_critic", 1)
            examples = kind.num_train_examples(spec, dataset, hyperparameters)
            steps_per_epoch = max(1, examples // images_per_step)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if spec.run_optimizers is not None:
        training.update(spec.run_optimizers(steps_per_epoch, epochs, learning_rate))
    elif learning_rate is not None:
        for key in ("g_optimizer", "d_optimizer"):
            training[key]["config"]["learning_rate"] = learning_rate
    training.update(epochs=epochs, steps_per_epoch=steps_per_epoch, jit_compile=jit_compile,
                    seed=seed, strategy=strategy, mixed_precision=bool(mixed_precision),
                    sync_batch_norm=bool(sync_batch_norm))
    if strategy not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}.")
    return {
        "model": model,
        "paper": spec.paper,
        "dataset": dataset,
        "data_dir": data_dir,
        "init_from": init_from,
        "hyperparameters": hyperparameters,
        "training": training,
        "versions": {"zoo": zoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }


def _check_positive(**values):
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}.")


def parse_assignments(pairs):
    """``["latent_dim=64", "loss=hinge"]`` -> ``{"latent_dim": 64, "loss": "hinge"}`` (JSON values)."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}.")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def hardware_description():
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [gpu.name for gpu in gpus],
    }


# --- Training ------------------------------------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """Adds ``seconds`` and ``images_per_second`` of each epoch to the logs."""

    def __init__(self, images_per_step):
        super().__init__()
        self.images_per_step = images_per_step

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        if logs is not None:
            logs["seconds"] = seconds
            logs["images_per_second"] = self.steps * self.images_per_step / seconds


def build_compiled_model(config):
    spec = zoo.get_spec(config["model"])
    training = config["training"]
    hyperparameters = dict(config["hyperparameters"])
    hyperparameters["image_shape"] = tuple(hyperparameters["image_shape"])
    distribute.set_precision(training.get("mixed_precision", False))
    model = zoo.build_model(config["model"], **hyperparameters)
    if training.get("sync_batch_norm", False):
        distribute.synchronize_batch_norm(model)
    g_optimizer, d_optimizer = spec.make_optimizers(
        g_optimizer=training["g_optimizer"], d_optimizer=training["d_optimizer"]
    )
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer,
                  jit_compile=training["jit_compile"])
    return model


def initialise_from(model, run_dir):
    """Start ``model`` from a finished run (``--init-from``: SRGAN from SRResNet, Ledig 2017)."""
    try:
        get_kind(zoo.get_spec(model.name).kind).initialise_from(model, run_dir)
    except (ValueError, OSError) as error:
        raise ConfigError(f"--init-from {run_dir}: {error}") from None


def train(config, run_dir, resume=False, verbose=1, strategy=None):
    """Train (or resume) the run described by ``config`` in ``run_dir``; returns the model.

    In a multi-worker run only the chief writes ``run_dir``; the other workers write the same
    files into a temporary directory they remove at the end (``training.distribute``).
    """
    training = config["training"]
    if strategy is None:
        strategy = distribute.make_strategy(training.get("strategy", "default"))
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint and not resume:
        raise ConfigError(
            f"{run_dir} already holds a run (epoch {checkpoint[0]}); pass --resume to continue it "
            "or choose another --out."
        )
    # Each train step makes n_critic critic steps of batch_size real images each.
    images_per_step = training["batch_size"] * config["hyperparameters"].get("n_critic", 1)
    kind = get_kind(zoo.get_spec(config["model"]).kind)
    write_dir = distribute.worker_run_dir(run_dir, strategy)
    dataset, (validation, validation_steps), grid = kind.training_data(config, write_dir, images_per_step)
    dataset, validation = distribute.shard_by_data(dataset), distribute.shard_by_data(validation)
    os.makedirs(write_dir, exist_ok=True)
    atomic_write_json(os.path.join(write_dir, "config.json"), config)
    keras.utils.set_random_seed(training["seed"])

    with strategy.scope():
        if checkpoint and resume:
            initial_epoch, path = checkpoint
            model = keras.saving.load_model(path)
            print(f"Resuming {run_dir} from epoch {initial_epoch} ({path}).")
        else:
            initial_epoch = 0
            model = build_compiled_model(config)
            if config.get("init_from"):
                initialise_from(model, config["init_from"])
    if initial_epoch >= training["epochs"]:
        print(f"{run_dir} already finished {initial_epoch} of {training['epochs']} epochs.")
    log_dir = os.path.join(write_dir, "logs")
    nan_guard = StopOnNonFiniteLoss()
    callbacks = [
        EpochTimer(images_per_step),
        grid,
        keras.callbacks.TensorBoard(log_dir=log_dir),
        keras.callbacks.CSVLogger(os.path.join(write_dir, "history.csv"), append=initial_epoch > 0),
        nan_guard,
        ResumableCheckpoint(write_dir),
    ]
    started = time.perf_counter()
    model.fit(dataset, epochs=training["epochs"], initial_epoch=initial_epoch,
              steps_per_epoch=training["steps_per_epoch"], validation_data=validation,
              validation_steps=validation_steps, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the pipeline shuffles
    if nan_guard.stopped:
        raise TrainingDiverged(
            f"training diverged (non-finite loss); {run_dir} keeps its last good checkpoint."
        )
    atomic_save_model(model, os.path.join(write_dir, "model.keras"))
    _record_run(write_dir, time.perf_counter() - started, initial_epoch, training["epochs"])
    distribute.cleanup_worker_dir(write_dir, run_dir)
    return model


def _record_run(run_dir, seconds, first_epoch, last_epoch):
    """Append this session's wall time and hardware to ``RUN_DIR/run.json`` (for model cards)."""
    path = os.path.join(run_dir, "run.json")
    record = {"sessions": []}
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
    record["sessions"].append({"epochs": [first_epoch, last_epoch], "seconds": round(seconds, 2),
                               "hardware": hardware_description()})
    record["total_seconds"] = round(sum(s["seconds"] for s in record["sessions"]), 2)
    atomic_write_json(path, record)


# --- Command line ------------------------------------------------------------------------------


def model_datasets():
    """``"dcgan (fashion_mnist), ..."``: every registered model with the data sets it takes."""
    def datasets(name):
        spec = zoo.get_spec(name)
        return ", ".join(get_kind(spec.kind).datasets(spec))

    return "; ".join(f"{name} ({datasets(name)})" for name in zoo.list_models())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a GAN of the zoo on a data set, with sample grids, TensorBoard logs "
        "and resumable checkpoints.",
        epilog=f"Models and the data sets they train on: {model_datasets()}. Examples: "
        "python -m training.train dcgan --dataset fashion_mnist --epochs 5 --out runs/dcgan; "
        "python -m training.train pix2pix --dataset grey_to_colour --epochs 20 --out runs/p2p",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help=f"one of: {', '.join(zoo.list_models())}")
    parser.add_argument("--dataset", default="fashion_mnist",
                        help="a data set the model takes (see below)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="generator steps per epoch (default: one pass over the data)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="real images (or pairs) per discriminator step (default: the paper's)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of both optimizers (default: the paper's)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="override a model hyper-parameter, e.g. --set loss=hinge --set r1_gamma=10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=False,
                        help="compile the train step with XLA (see bench/train_throughput.py)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy; multi_worker_mirrored reads TF_CONFIG "
                        "(docs/distributed.md)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16 with dynamic loss scaling of both players "
                        "(mixed_float16; for GPUs, docs/distributed.md)")
    parser.add_argument("--sync-batch-norm", action="store_true",
                        help="batch-norm statistics over all replicas' examples")
    parser.add_argument("--data-dir", default=None, help="tfds data dir (default: tfds's)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from its last checkpoint")
    parser.add_argument("--init-from", default=None, metavar="RUN_DIR",
                        help="start from the weights of a finished run (e.g. srgan from an "
                        "srresnet run, as Ledig et al. 2017 do)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        config_path = os.path.join(args.out, "config.json")
        resuming = args.resume and os.path.exists(config_path)
        if resuming:
            with open(config_path) as f:
                config = json.load(f)
        # A multi-worker strategy must exist before TensorFlow runs any op.
        strategy = distribute.make_strategy(
            config["training"].get("strategy", "default") if resuming else args.strategy)
        if resuming:
            _check_positive(epochs=args.epochs)
            planned = config["training"]["epochs"]
            if args.epochs > planned and zoo.get_spec(config["model"]).run_optimizers is not None:
                print(f"warning: the learning-rate schedule of {args.out} was laid out over {planned} "
                      f"epochs and reaches 0 there; epochs {planned + 1}-{args.epochs} will not "
                      "change the weights.", file=sys.stderr)
            config["training"]["epochs"] = args.epochs
        else:
            config = resolve_config(
                args.model, args.dataset, args.epochs, args.steps_per_epoch, args.batch_size,
                parse_assignments(args.set), args.lr, args.jit_compile, args.seed,
                args.data_dir, args.strategy, args.init_from, args.mixed_precision,
                args.sync_batch_norm,
            )
            try:  # fail fast, in one line, on a hyper-parameter the builder refuses
                model = build_compiled_model(config)
            except (ValueError, TypeError) as error:
                raise ConfigError(str(error)) from None
            if args.init_from:  # and on a run it cannot start from, before writing anything
                initialise_from(model, args.init_from)
        train(config, args.out, resume=args.resume, strategy=strategy)
    except (ConfigError, data.DatasetNotPreparedError, data.DataUnavailableError,
            image_pairs.PhotoSourceUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {os.path.join(args.out, 'model.keras')}; samples in {os.path.join(args.out, 'samples')}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
