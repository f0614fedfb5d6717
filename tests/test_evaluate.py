"""The evaluate command on each model-path kind, and its calibration figures."""

import json
import os

import pytest

import zoo
from export.saved_model import export_model
from training import evaluate

NUM = "300"


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory, fashion_mnist_data_dir):
    root = tmp_path_factory.mktemp("eval")
    model = zoo.build_model("dcgan", seed=1)
    model.compile(*zoo.get_spec("dcgan").make_optimizers())
    run_dir = root / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    keras_file = root / "other" / "gen.keras"
    keras_file.parent.mkdir()
    model.save(keras_file)
    version_dir = export_model(model, str(root / "saved"), "dcgan")
    return {"run_dir": str(run_dir), "keras": str(keras_file), "saved_model": version_dir}


@pytest.mark.parametrize("kind", ["run_dir", "keras", "saved_model"])
def test_evaluate_each_model_path_kind(kind, model_paths, fashion_mnist_data_dir, capsys):
    path = model_paths[kind]
    assert evaluate.main([path, "--num-samples", NUM, "--data-dir", fashion_mnist_data_dir]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_kind"] == kind
    metrics = result["metrics"]
    assert set(metrics) >= {"fid_fmnist_300", "kid_fmnist_300", "is_fmnist_300",
                            "precision_fmnist_300", "recall_fmnist_300"}
    assert metrics["fid_fmnist_300"] > 10  # an untrained generator is far from the data
    assert result["protocol"]["num_samples"] == 300
    log = evaluate.log_path_for(path)
    if kind == "saved_model":  # versions are immutable: the log sits in the model's directory
        assert log == os.path.join(os.path.dirname(path), "evaluations.jsonl")
    with open(log) as f:
        assert json.loads(f.readlines()[-1])["metrics"] == metrics


def test_reference_floor_is_below_noise_ceiling(fashion_mnist_data_dir, capsys):
    assert evaluate.main(["--reference", "--num-samples", "500",
                          "--data-dir", fashion_mnist_data_dir]) == 0
    result = json.loads(capsys.readouterr().out)
    floor = result["floor_real_train_vs_test"]["fid_fmnist_500"]
    ceiling = result["ceiling_gaussian_noise"]["fid_fmnist_500"]
    assert floor < 20 and ceiling > 100 and floor < ceiling / 10


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No model at" in err
