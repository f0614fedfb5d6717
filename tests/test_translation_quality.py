"""Translation metrics of pix2pix and CycleGAN (training.translation_quality) and their CLI."""

import json

import numpy as np
import pytest
import tensorflow as tf

import zoo
from export.saved_model import export_model
from training import evaluate, image_pairs
from training import translation_quality as tq

TASK = "grey_to_colour"


def test_perfect_translation_scores_perfectly():
    targets = (photos for _, photos in image_pairs.photo_pairs(TASK, "test", batch_size=32, shuffle=False))
    oracle = lambda inputs: next(targets)  # noqa: E731  (the held-out targets, in order)
    result = tq.paired_quality(oracle, TASK)
    saturation = result.pop("target_saturation")
    assert result == {"l1": 0.0, "psnr": float("inf"), "ssim": pytest.approx(1.0, abs=1e-6),
                      "saturation": pytest.approx(saturation), "tiles": 80}
    assert 0.1 < saturation < 1  # colour photos


def test_input_baseline_matches_a_hand_computation():
    import skimage.color
    from skimage.metrics import structural_similarity

    result = tq.input_baseline(TASK, crop_size=64, short_side=64)  # one tile per held-out photo
    l1, psnr, ssim = [], [], []
    for name in image_pairs.HELD_OUT:
        grey, photo = (x[:64, :64].astype(np.float64) / 255 for x in image_pairs.photo_pair(TASK, name, 64))
        output = np.repeat(grey, 3, axis=-1)
        l1.append(2 * np.abs(output - photo).mean())  # [-1, 1] units
        psnr.append(10 * np.log10(1 / np.mean((output - photo) ** 2)))
        ssim.append(structural_similarity(output, photo, channel_axis=-1, data_range=1.0,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    assert result["tiles"] == 4
    assert result["l1"] == pytest.approx(np.mean(l1), rel=1e-5)
    assert result["psnr"] == pytest.approx(np.mean(psnr), rel=1e-4)
    assert result["ssim"] == pytest.approx(np.mean(ssim), abs=1e-4)
    assert 0 < result["ssim"] < 1 and result["l1"] > 0.01  # grey is not the colour photo
    assert result["saturation"] == pytest.approx(0.0, abs=1e-6)  # grey has no colour
    hsv_saturation = [np.mean(skimage.color.rgb2hsv(image_pairs.photo_pair(TASK, name, 64)[1][:64, :64])[..., 1])
                      for name in image_pairs.HELD_OUT]
    assert result["target_saturation"] == pytest.approx(np.mean(hsv_saturation), abs=1e-4)


def test_mean_colour_baseline_is_one_constant_colour():
    result = tq.mean_colour_baseline(TASK, crop_size=64, short_side=64)
    photos = [image_pairs.load_photo(name, 64) for name in image_pairs.photo_names("train")]
    colour = np.concatenate([p.reshape(-1, 3) for p in photos]).mean(axis=0) / 255
    expected_saturation = (colour.max() - colour.min()) / colour.max()  # HSV saturation of one colour
    assert result["tiles"] == 4 and result["saturation"] == pytest.approx(expected_saturation, abs=1e-3)
    assert result["l1"] > 0.05 and result["ssim"] < 0.5  # a flat colour has no structure


def test_identity_cycle_scores_like_no_translation(fashion_mnist_data_dir):
    identity = lambda images: images  # noqa: E731
    result = tq.cycle_quality(identity, identity, num_samples=200, data_dir=fashion_mnist_data_dir)
    assert result["cycle_l1_a"] == result["cycle_l1_b"] == 0.0
    assert result["accuracy_a_to_b"] == result["source_accuracy_a_to_b"] < 0.05
    assert result["accuracy_b_to_a"] == result["source_accuracy_b_to_a"] < 0.05
    untranslated = result["fid_fmnist_200_real_a_vs_real_b"]
    assert result["fid_fmnist_200_a_to_b"] == untranslated > 10  # sneakers are not boots
    assert result["fid_fmnist_200_b_to_a"] == pytest.approx(untranslated, rel=1e-6)
    for domain in "ab":  # real train vs real test images of one class: far below sneakers vs boots
        assert 0 < result[f"fid_fmnist_200_floor_{domain}"] < untranslated / 5


def test_cycle_quality_refuses_more_than_the_test_split():
    with pytest.raises(ValueError, match="1000"):
        tq.cycle_quality(None, None, num_samples=5000)


@pytest.fixture(scope="module")
def models():
    built = {}
    for name, architecture, hyperparameters in [
        ("pix2pix", "pix2pix", dict(image_shape=(64, 64, 3), input_channels=1, generator_width=8,
                                    discriminator_width=8)),
        ("pix2pix_rgb", "pix2pix", dict(image_shape=(64, 64, 3), input_channels=3,
                                        generator_width=8, discriminator_width=8)),
        ("cyclegan", "cyclegan", dict(image_shape=(32, 32, 1), generator_width=8,
                                      residual_blocks=1, discriminator_width=8)),
    ]:
        built[name] = zoo.build_model(architecture, **hyperparameters)
        if name != "pix2pix_rgb":  # not saved
            built[name].compile(*zoo.get_spec(architecture).make_optimizers())
    return built


@pytest.fixture(scope="module")
def model_paths(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    paths = {"cyclegan_saved": export_model(models["cyclegan"], str(root / "saved"), "cyclegan")}
    for name in ("pix2pix", "cyclegan"):
        (root / name).mkdir()
        paths[name] = str(root / name / "model.keras")
        models[name].save(paths[name])
    return paths


def run(args, capsys):
    code = evaluate.main(args)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err.strip())


def test_cli_pix2pix_writes_a_record_with_the_baseline(model_paths, capsys):
    path = model_paths["pix2pix"]
    code, result = run([path, "--task", TASK], capsys)
    assert code == 0
    assert result["task"] == TASK and result["protocol"]["crop_size"] == 64  # inferred from the U-Net
    assert result["protocol"]["adversarial_weight"] == 1.0
    for figures in (result["metrics"], result["baseline_input"], result["baseline_mean_colour"]):
        assert set(figures) == {"l1", "psnr", "ssim", "saturation", "target_saturation", "tiles"}
        assert figures["tiles"] == 80
    assert result["metrics"]["l1"] > result["baseline_input"]["l1"]  # untrained: worse than copying
    with open(evaluate.log_path_for(path)) as f:
        assert json.loads(f.readlines()[-1])["baseline_input"] == result["baseline_input"]


def test_cli_cyclegan_keras_and_saved_model(model_paths, fashion_mnist_data_dir, capsys):
    for kind, count in (("cyclegan", 200), ("cyclegan_saved", 20)):  # the saved one: just the path
        path = model_paths[kind]
        code, result = run([path, "--num-samples", str(count), "--data-dir", fashion_mnist_data_dir],
                           capsys)
        assert code == 0 and result["task"] == "sneakers_and_boots"
        assert set(result["metrics"]) == {
            "accuracy_a_to_b", "accuracy_b_to_a", "source_accuracy_a_to_b", "source_accuracy_b_to_a",
            "cycle_l1_a", "cycle_l1_b", f"fid_fmnist_{count}_a_to_b", f"fid_fmnist_{count}_b_to_a",
            f"fid_fmnist_{count}_real_a_vs_real_b", f"fid_fmnist_{count}_floor_a",
            f"fid_fmnist_{count}_floor_b"}
        assert result["metrics"]["cycle_l1_a"] > 0.05  # an untrained pair does not reconstruct
        with open(evaluate.log_path_for(path)) as f:
            assert json.loads(f.readlines()[-1]) == result


def test_load_translators_of_a_saved_model(models, model_paths):
    translators = tq.load_translators(model_paths["cyclegan_saved"])
    images = tf.random.stateless_uniform((2, 32, 32, 1), (1, 2), -1, 1)
    for name, generator in models["cyclegan"].translators.items():
        expected = generator(images, training=False)
        np.testing.assert_allclose(translators[name](images), expected, atol=1e-5)


def test_pix2pix_needs_its_task(model_paths, capsys):
    code, err = run([model_paths["pix2pix"]], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "pass --task edges_to_photo or grey_to_colour" in err


@pytest.mark.parametrize("model, task, crop_size, message", [
    ("pix2pix", "horses", None, "unknown task 'horses'"),
    ("pix2pix", "sneakers_and_boots", None, "does not fit a pix2pix model"),
    ("cyclegan", TASK, None, "does not fit a CycleGAN model"),
    ("pix2pix_rgb", TASK, None, "the model maps 3 to 3"),
    ("pix2pix", TASK, 48, "multiples of 64"),
])
def test_tasks_that_do_not_fit_are_refused(models, model, task, crop_size, message):
    with pytest.raises(ValueError, match=message):
        tq.evaluate_translation(models[model], task, crop_size)


def test_a_size_the_saved_model_refuses_is_one_clear_line(models, tmp_path, capsys):
    path = export_model(models["pix2pix"], str(tmp_path), "p2p")  # a SavedModel has no stride attribute
    code, err = run([path, "--task", TASK, "--crop-size", "32"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "multiples of 64" in err and "Graph execution error" not in err
