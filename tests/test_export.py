"""SavedModel exports: TF Serving layout, signatures, determinism, plain-TensorFlow loading."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import zoo
from export import saved_model as export

PYTHON_ONLY_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    model = zoo.build_model("dcgan", seed=7)
    path = export.export_model(model, str(base), "dcgan_test")
    return model, str(base), path


def stored_values(path):
    """Number of values in a SavedModel's variables checkpoint."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    return sum(int(np.prod(shape)) for key, shape in reader.get_variable_to_shape_map().items()
               if key != "_CHECKPOINTABLE_OBJECT_GRAPH")


def test_export_stores_each_network_variable_once(exported):
    """The generator, and the discriminator that inpainting's perceptual loss needs, once each."""
    model, _, path = exported
    assert stored_values(path) == (model.generator.count_params()
                                   + model.discriminator.count_params())


def test_layout_and_signatures(exported):
    _, base, path = exported
    assert path == os.path.join(base, "dcgan_test", "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))
    assert not [d for d in os.listdir(os.path.dirname(path)) if d.startswith(".tmp")]
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "generate_from_seed", "inpaint",
                                      "inpaint_bytes", "interpolate"}
    default = loaded.signatures["serving_default"]
    assert default.structured_input_signature[1]["z"].shape.as_list() == [None, 100]
    assert default.structured_outputs["images"].shape.as_list() == [None, 28, 28, 1]
    seeded = loaded.signatures["generate_from_seed"]
    assert seeded.structured_input_signature[1]["seed"].dtype == tf.int64
    assert set(seeded.structured_outputs) == {"images", "images_png_bytes"}


def test_outputs_equal_the_keras_model(exported):
    model, _, path = exported
    z = np.random.default_rng(0).normal(size=(3, 100)).astype("float32")
    served = tf.saved_model.load(path).signatures["serving_default"](z=tf.constant(z))["images"]
    np.testing.assert_allclose(served.numpy(), np.asarray(model(z)), atol=1e-6)


def test_no_python_only_ops(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(exported[2], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert ops and not ops & PYTHON_ONLY_OPS


def test_seed_gives_same_png_in_a_fresh_tensorflow_only_process(exported):
    _, _, path = exported
    script = (
        "import json, sys, base64, tensorflow as tf\n"
        f"out = tf.saved_model.load({path!r}).signatures['generate_from_seed'](seed=tf.constant([5, 9], tf.int64))\n"
        "assert 'zoo' not in sys.modules and 'training' not in sys.modules\n"
        "print(json.dumps([base64.b64encode(b).decode() for b in out['images_png_bytes'].numpy()]))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd="/", env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    import base64

    remote = [base64.b64decode(b) for b in json.loads(result.stdout.strip().splitlines()[-1])]
    local = tf.saved_model.load(path).signatures["generate_from_seed"](
        seed=tf.constant([5, 9], tf.int64))["images_png_bytes"].numpy()
    assert remote == list(local)
    assert remote[0] != remote[1]
    image = tf.io.decode_png(remote[0]).numpy()
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8


def test_png_matches_float_images(exported):
    loaded = tf.saved_model.load(exported[2]).signatures["generate_from_seed"]
    out = loaded(seed=tf.constant([3], tf.int64))
    decoded = tf.io.decode_png(out["images_png_bytes"][0]).numpy().astype(np.float32)
    expected = np.clip(np.round((out["images"][0].numpy() + 1) * 127.5), 0, 255)
    np.testing.assert_array_equal(decoded, expected)


def test_versions_increment_and_are_immutable(exported, tmp_path):
    model = exported[0]
    base = str(tmp_path)
    assert export.export_model(model, base, "m").endswith(os.path.join("m", "1"))
    assert export.export_model(model, base, "m").endswith(os.path.join("m", "2"))
    with pytest.raises(export.ExportError, match="already exists"):
        export.export_model(model, base, "m", version=2)
    assert sorted(os.listdir(os.path.join(base, "m"))) == ["1", "2"]


def test_cli_from_run_dir_and_keras_file(tmp_path):
    model = zoo.build_model("vanilla", seed=1)
    spec = zoo.get_spec("vanilla")
    model.compile(*spec.make_optimizers())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    base = tmp_path / "saved"
    assert export.main([str(run_dir), "--name", "v", "--base", str(base)]) == 0
    assert export.main([str(run_dir / "model.keras"), "--name", "v", "--base", str(base)]) == 0
    assert sorted(os.listdir(base / "v")) == ["1", "2", "MODEL_CARD.md"]
    card = (base / "v" / "MODEL_CARD.md").read_text()
    assert "Goodfellow et al. 2014" in card and "- `1`" in card and "- `2`" in card
    assert not (base / "models.config").exists()  # a serving config is the user's: never written here


def test_model_card_from_a_training_run(tmp_path):
    import csv
    import json

    from export.model_card import write_model_card

    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "samples" / "epoch_002.png").write_bytes(b"png")
    (run_dir / "config.json").write_text(json.dumps(
        {"model": "dcgan", "dataset": "fashion_mnist", "hyperparameters": {"latent_dim": 100},
         "training": {"batch_size": 128}}))
    (run_dir / "run.json").write_text(json.dumps({"total_seconds": 600.0, "sessions": [
        {"seconds": 600.0, "epochs": [0, 2], "hardware": {"gpus": [], "cpu_count": 2,
                                                          "platform": "Linux"}}]}))
    with open(run_dir / "history.csv", "w", newline="") as f:
        csv.writer(f).writerows([["epoch", "d_loss", "g_loss"], [1, 1.2, 0.9]])
    (run_dir / "evaluations.jsonl").write_text(json.dumps(
        {"metrics": {"fid_fmnist_10k": 12.5}, "protocol": {"num_samples": 10000}}) + "\n")
    (tmp_path / "base" / "m" / "1").mkdir(parents=True)
    card = open(write_model_card(tmp_path / "base", "m", run_dir)).read()
    for expected in ("Radford et al. 2015", "fashion_mnist", '"batch_size": 128', "10.0 min",
                     "CPU only, 2 cores", "g_loss 0.9", "`fid_fmnist_10k` | 12.5",
                     "samples.png", "Known limits", "None: every hyper-parameter is the registry's default"):
        assert expected in card, expected
    assert (tmp_path / "base" / "m" / "samples.png").read_bytes() == b"png"


def test_model_card_names_each_deviation_from_the_papers_defaults():
    from export.model_card import deviation_lines

    config = {"model": "srgan", "hyperparameters": {"image_shape": [48, 48, 3], "residual_blocks": 16,
                                                    "bicubic_skip": True, "seed": 3},
              "training": {"batch_size": 16, "epochs": 4, "steps_per_epoch": 50,
                           "g_optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-3,
                                                                            "beta_1": 0.9, "beta_2": 0.999}}}}
    lines = deviation_lines(config)
    assert lines[:2] == ["`image_shape`: [96, 96, 3] -> [48, 48, 3]", "`bicubic_skip`: False -> True"]
    assert any(line.startswith("`g_optimizer`:") and "0.001" in line for line in lines)
    assert "training length: 200 generator steps" in lines[-1] and len(lines) == 4


def test_translation_model_card_lists_signatures_and_the_input_baseline(tmp_path):
    import json

    from export.model_card import write_model_card

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"model": "cyclegan", "dataset": "sneakers_and_boots"}))
    (run_dir / "evaluations.jsonl").write_text("".join(json.dumps(
        {"metrics": {"l1": l1}, "baseline_input": {"l1": 0.3}, "protocol": {"task": "t"}}) + "\n"
        for l1 in (0.2, 0.1)))  # re-evaluated: the card shows the newest figures only
    (tmp_path / "base" / "c" / "1").mkdir(parents=True)
    card = open(write_model_card(tmp_path / "base", "c", run_dir)).read()
    for expected in ("Zhu et al. 2017", "`a_to_b_bytes`", "multiples of the generator's total stride",
                     "`l1` | 0.1", "`l1` of the input itself (baseline) | 0.3"):
        assert expected in card, expected
    assert "generate_from_seed" not in card and "0.2" not in card


def test_cli_missing_model_is_one_clear_line(tmp_path, capsys):
    assert export.main([str(tmp_path / "nothing"), "--name", "x", "--base", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.keras" in err
