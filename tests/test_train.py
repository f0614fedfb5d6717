"""The training CLI on a few steps of the real Fashion-MNIST: outputs, resume, errors."""

import json
import os

import keras
import numpy as np
import pytest

from training import train
from zoo.kinds import image_to_image as image_to_image_kind


def run(args):
    return train.main(args)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fashion_mnist_data_dir):
    run_dir = str(tmp_path_factory.mktemp("runs") / "dcgan")
    args = ["dcgan", "--dataset", "fashion_mnist", "--epochs", "1", "--steps-per-epoch", "3",
            "--batch-size", "16", "--out", run_dir]
    if fashion_mnist_data_dir:
        args += ["--data-dir", fashion_mnist_data_dir]
    assert run(args) == 0
    return run_dir, args


def test_run_writes_config_grid_checkpoint_logs_and_model(finished_run):
    run_dir, _ = finished_run
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model"] == "dcgan" and config["training"]["batch_size"] == 16
    assert config["hyperparameters"]["latent_dim"] == 100  # registered default
    assert config["training"]["g_optimizer"]["config"]["learning_rate"] == pytest.approx(2e-4)
    grid = os.path.join(run_dir, "samples", "epoch_001.png")
    assert os.path.getsize(grid) > 0
    import tensorflow as tf

    image = tf.io.decode_png(open(grid, "rb").read()).numpy()
    assert image.shape[0] > 8 * 28 and image.std() > 0  # an 8x8 grid of non-blank samples
    with open(os.path.join(run_dir, "state.json")) as f:
        assert json.load(f)["epoch"] == 1
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "epoch_001.keras"))
    assert any(f.startswith("events") for _, _, files in os.walk(os.path.join(run_dir, "logs"))
               for f in files)
    history = open(os.path.join(run_dir, "history.csv")).read().splitlines()
    assert "images_per_second" in history[0] and len(history) == 2
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert int(model.d_optimizer.iterations) == 3


def test_resume_continues_epoch_counter_and_optimizer_state(finished_run):
    run_dir, args = finished_run
    args = [a if a != "1" else "2" for a in args] + ["--resume"]  # --epochs 2
    assert run(args) == 0
    with open(os.path.join(run_dir, "state.json")) as f:
        assert json.load(f)["epoch"] == 2
    assert os.path.isfile(os.path.join(run_dir, "samples", "epoch_002.png"))
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert int(model.d_optimizer.iterations) == 6  # 3 before the resume + 3 after
    assert len(open(os.path.join(run_dir, "history.csv")).read().splitlines()) == 3


def test_existing_run_needs_resume(finished_run, capsys):
    run_dir, args = finished_run
    assert run(args) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("args,expected", [
    (["stylegan9", "--out", "x"], "Unknown model 'stylegan9'"),
    (["dcgan", "--dataset", "imagenet", "--out", "x"], "unknown dataset 'imagenet'"),
    (["dcgan", "--epochs", "0", "--out", "x"], "--epochs must be a positive integer"),
    (["dcgan", "--set", "latent_dims=3", "--out", "x"], "latent_dims"),
    (["dcgan", "--set", "loss=nope", "--out", "x"], "Unknown loss"),
])
def test_bad_input_is_one_clear_line(args, expected, capsys, tmp_path):
    args = [a if a != "x" else str(tmp_path / "run") for a in args]
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected.lower() in err.lower() and len(err.splitlines()) == 1


def test_missing_data_names_the_prepare_command(tmp_path, capsys):
    args = ["dcgan", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "empty"),
            "--epochs", "1", "--steps-per-epoch", "1"]
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert "python -m training.data prepare fashion_mnist" in err and len(err.splitlines()) == 1


def test_help_lists_models_and_datasets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("dcgan", "vanilla", "wgan", "wgan_gp", "lsgan", "fashion_mnist", "pix2pix",
                 "cyclegan", "edges_to_photo", "grey_to_colour", "sneakers_and_boots"):
        assert name in out


# --- Translation models: pix2pix on paired photo crops, CycleGAN on unpaired Fashion-MNIST -----

TINY = {
    "pix2pix": ["--set", "generator_width=4", "--set", "discriminator_width=4"],
    "cyclegan": ["--set", "generator_width=4", "--set", "residual_blocks=1",
                 "--set", "discriminator_width=4", "--set", "pool_size=2"],
}


@pytest.fixture(scope="module")
def translation_runs(tmp_path_factory, fashion_mnist_data_dir):
    root = tmp_path_factory.mktemp("translation_runs")
    runs = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(image_to_image_kind, "VALIDATION_EXAMPLES", 8)  # held-out scoring: 8 examples, not 256
        for model, dataset in [("pix2pix", "grey_to_colour"), ("cyclegan", "sneakers_and_boots")]:
            run_dir = str(root / model)
            args = [model, "--dataset", dataset, "--epochs", "2", "--steps-per-epoch", "2",
                    "--out", run_dir, *TINY[model]]
            if fashion_mnist_data_dir:
                args += ["--data-dir", fashion_mnist_data_dir]
            assert run(args) == 0
            runs[model] = run_dir
    return runs


@pytest.mark.parametrize("model,size,channels", [("pix2pix", 64, (1, 3)), ("cyclegan", 32, (1, 1))])
def test_translation_run_trains_scores_held_out_data_and_draws_triplets(
        translation_runs, model, size, channels):
    import tensorflow as tf

    run_dir = translation_runs[model]
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["hyperparameters"]["image_shape"] == [size, size, channels[1]]
    assert config["hyperparameters"].get("input_channels", channels[0]) == channels[0]
    history = open(os.path.join(run_dir, "history.csv")).read().splitlines()
    header, last = history[0].split(","), history[-1].split(",")
    assert len(history) == 3 and "val_g_loss" in header  # held-out losses after each epoch
    assert all(np.isfinite(float(value)) for value in last)
    grid = tf.io.decode_png(open(os.path.join(run_dir, "samples", "epoch_002.png"), "rb").read())
    assert grid.shape[1] == 3 * size + 4 * 2  # three columns: input, output, target/cycle
    assert grid.shape[0] == 8 * size + 9 * 2  # eight held-out examples
    trained = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert int(trained.g_optimizer.iterations) == 4


def test_cyclegan_schedule_is_laid_out_over_the_run(translation_runs):
    with open(os.path.join(translation_runs["cyclegan"], "config.json")) as f:
        schedule = json.load(f)["training"]["g_optimizer"]["config"]["learning_rate"]["config"]
    # 2 epochs of 2 steps: constant for the first epoch, linear decay over the second (paper: 100 + 100)
    assert (schedule["constant_steps"], schedule["decay_steps"]) == (2, 2)
    model = keras.saving.load_model(os.path.join(translation_runs["cyclegan"], "model.keras"))
    assert float(model.g_optimizer.learning_rate) == pytest.approx(0.0)  # decayed to 0 at the end


def test_translation_run_resumes(translation_runs, fashion_mnist_data_dir):
    run_dir = translation_runs["pix2pix"]
    args = ["pix2pix", "--dataset", "grey_to_colour", "--epochs", "3", "--out", run_dir, "--resume"]
    assert run(args) == 0
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert int(model.g_optimizer.iterations) == 6
    assert os.path.isfile(os.path.join(run_dir, "samples", "epoch_003.png"))


@pytest.mark.parametrize("args,expected", [
    (["pix2pix", "--dataset", "sneakers_and_boots"], "pix2pix trains on paired data"),
    (["cyclegan", "--dataset", "edges_to_photo"], "cyclegan trains on unpaired data"),
    (["pix2pix", "--dataset", "fashion_mnist"], "unknown translation dataset 'fashion_mnist'"),
    (["dcgan", "--dataset", "grey_to_colour"], "unknown dataset 'grey_to_colour'"),
    (["pix2pix", "--dataset", "grey_to_colour", "--set", "image_shape=[64,32,3]"], "square"),
    (["pix2pix", "--dataset", "grey_to_colour", "--set", "image_shape=[64,64,1]"],
     "grey_to_colour has 3-channel targets"),
    (["pix2pix", "--dataset", "edges_to_photo", "--set", "input_channels=3"],
     "edges_to_photo has 1-channel inputs"),
])
def test_translation_bad_input_is_one_clear_line(args, expected, capsys, tmp_path):
    assert run(args + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected.lower() in err.lower() and len(err.splitlines()) == 1


def test_sample_grid_layout():
    from training.images import make_grid

    images = np.stack([np.full((4, 4, 1), v) for v in (-1.0, 1.0, 0.0)])
    grid = make_grid(images, columns=2, padding=1)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 1)
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 255 and grid[6, 1, 0] == 128


def test_non_finite_loss_stops_training():
    from training.callbacks import StopOnNonFiniteLoss

    guard = StopOnNonFiniteLoss()
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.on_train_batch_end(0, {"d_loss": 0.5, "g_loss": 1.0})
    assert not guard.stopped
    guard.on_train_batch_end(1, {"d_loss": float("nan"), "g_loss": 1.0})
    assert guard.stopped and guard.model.stop_training
