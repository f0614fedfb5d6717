"""Fine-tuning a preset with ``fit`` does what a user wants (docs/fine_tuning.md): the DCGAN
preset, fitted on Fashion-MNIST's sneakers only, makes more sneakers by the zoo's evaluator."""

import os
import sys

import zoo
from training.feature_networks import load_feature_network

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import fine_tune_preset  # noqa: E402  (the measurement of docs/fine_tuning.md, small here)

SNEAKER = 7


def test_fine_tuning_the_dcgan_preset_on_sneakers_makes_more_sneakers(
        fashion_mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    model = zoo.from_preset("dcgan_fashion_mnist", kind="unconditional")
    network = load_feature_network("fashion_mnist")
    before = fine_tune_preset.class_shares(model, network, 300)[SNEAKER]
    history = fine_tune_preset.fine_tune(model, SNEAKER, steps=100, batch_size=32,
                                         data_dir=fashion_mnist_data_dir)
    after = fine_tune_preset.class_shares(model, network, 300)[SNEAKER]
    assert len(history["g_loss"]) == 1 and int(model.g_optimizer.iterations) == 100
    assert before < 0.3 and after > before + 0.3, (before, after)
