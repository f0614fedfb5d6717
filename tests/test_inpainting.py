"""Inpainting by latent search (Yeh et al. 2016) and latent interpolation: the pieces, the search
on a tiny generator, and the served ``inpaint``/``inpaint_bytes``/``interpolate`` signatures."""

import base64
import http.client
import io
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy.signal import convolve2d
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import zoo
from export.saved_model import export_model
from zoo.inpainting import (Inpainter, InpaintingOptions, importance_weights, inpaint, paste,
                            poisson_blend)
from zoo.interpolation import interpolate

SIZE = 16


def tiny_dcgan():
    return zoo.build_model("dcgan", image_shape=(SIZE, SIZE, 1), latent_dim=8, generator_width=8,
                           discriminator_width=8, kernel_size=3, seed=0)


def centre_mask(batch=2, size=SIZE, hole=(5, 11)):
    masks = np.zeros((batch, size, size, 1), np.float32)
    masks[:, hole[0]:hole[1], hole[0]:hole[1]] = 1.0
    return masks


# --- the pieces -------------------------------------------------------------------------------


def test_importance_weights_are_the_papers_windowed_missing_fraction():
    masks = centre_mask(batch=1)
    weights = importance_weights(masks).numpy()[0, ..., 0]
    expected = convolve2d(masks[0, ..., 0], np.ones((7, 7)) / 49, mode="same", boundary="symm")
    expected *= 1 - masks[0, ..., 0]
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert weights[masks[0, ..., 0] == 1].max() == 0  # the hole itself weighs nothing
    assert weights[4, 8] > weights[2, 8] > 0 == weights[1, 8]  # nearer the hole, heavier; 4 rows off, 0


def test_poisson_blending_keeps_the_context_and_removes_an_offset_in_the_hole():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 1)).astype(np.float32)
    masks = centre_mask()
    shifted = images + 0.5  # same gradients, wrong brightness: blending must undo the offset
    blended = poisson_blend(images, shifted, masks).numpy()
    np.testing.assert_array_equal(blended[masks[..., 0] == 0], images[masks[..., 0] == 0])
    np.testing.assert_allclose(blended, images, atol=1e-3)
    pasted = paste(images, shifted, masks).numpy()
    assert np.abs(pasted - images).max() == pytest.approx(0.5)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_interpolation_starts_and_ends_at_the_two_codes(distribution):
    z_a, z_b = tf.constant([1.0, 0.0, 0.0]), tf.constant([0.0, 2.0, 0.0])
    path = interpolate(z_a, z_b, 5, distribution).numpy()
    assert path.shape == (5, 3)
    np.testing.assert_allclose(path[0], z_a, atol=1e-6)
    np.testing.assert_allclose(path[-1], z_b, atol=1e-6)
    middle_norm = np.linalg.norm(path[2])
    if distribution == "normal":  # spherical: the norm goes smoothly from 1 to 2, not through 1.1
        assert 1.0 < middle_norm < 2.0 and middle_norm > np.linalg.norm((z_a + z_b) / 2) + 0.1
    else:  # linear
        np.testing.assert_allclose(path[2], (z_a + z_b) / 2, atol=1e-6)


def test_the_search_finds_a_code_that_fits_the_context_better_than_its_start():
    """The target is the generator's own image: a fitting code exists, the search must approach it."""
    model = tiny_dcgan()
    target = model.generator(tf.random.stateless_normal([2, 8], [3, 4]), training=False).numpy()
    masks = centre_mask()
    options = InpaintingOptions(steps=1, restarts=2, perceptual_weight=0.0, blend=False)
    start = inpaint(model, target, masks, options)
    searched = inpaint(model, target, masks, options, steps=150)
    assert (searched["loss"] < 0.9 * start["loss"]).all(), (start["loss"], searched["loss"])
    hole = masks[..., 0] == 1
    assert (np.abs(searched["images"] - target)[hole].mean()
            < np.abs(start["images"] - target)[hole].mean())
    np.testing.assert_array_equal(searched["images"][~hole], target[~hole])  # context untouched


@pytest.mark.parametrize("masks,words", [
    (np.zeros((2, SIZE, SIZE, 1), np.float32), "marks no missing pixel"),
    (np.ones((2, SIZE, SIZE, 1), np.float32), "marks every pixel missing"),
    (centre_mask() * 0.5, "masks must be binary"),
    (centre_mask(size=8), "masks must be [batch, height, width, 1]"),
])
def test_bad_masks_are_refused_naming_the_problem(masks, words):
    images = np.zeros((2, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ValueError, match=None) as refused:
        Inpainter(tiny_dcgan(), InpaintingOptions(steps=1, restarts=1)).complete(images, masks)
    assert words in str(refused.value)


# --- served -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from export.serve import ModelServer

    base = tmp_path_factory.mktemp("inpainting_models")
    export_model(tiny_dcgan(), str(base), "dcgan_tiny")
    with ModelServer(str(base), rest_port=0, grpc_port=0, web_page=False) as running:
        yield running


def rest(server, body):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=120)
    conn.request("POST", "/v1/models/dcgan_tiny:predict", json.dumps(body).encode())
    answer = conn.getresponse()
    status, document = answer.status, json.loads(answer.read())
    conn.close()
    return status, document


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_served_inpaint_bytes_fills_the_hole_and_keeps_the_context(server):
    photo = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    mask = (centre_mask(batch=1)[0, ..., 0] * 255).astype(np.uint8)
    status, answer = rest(server, {"signature_name": "inpaint_bytes", "instances": [
        {"image_bytes": b64(png(photo)), "mask_bytes": b64(png(mask))}]})
    assert status == 200, answer
    completed = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["predictions"][0]["b64"]))))
    assert completed.shape == (SIZE, SIZE)
    known = mask == 0
    assert np.abs(completed[known].astype(int) - photo[known]).max() <= 1  # PNG rounding only


def test_served_interpolate_over_rest_and_grpc(server):
    status, answer = rest(server, {"signature_name": "interpolate",
                                   "inputs": {"seed_a": 1, "seed_b": 2, "steps": 4}})
    assert status == 200, answer
    images = np.asarray(answer["outputs"]["images"])
    assert images.shape == (4, SIZE, SIZE, 1) and len(answer["outputs"]["images_png_bytes"]) == 4
    assert not np.allclose(images[0], images[-1])

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server.grpc_address))
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "dcgan_tiny", "interpolate"
    for name, value in (("seed_a", 1), ("seed_b", 2), ("steps", 4)):
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.int64(value)))
    outputs = stub.Predict(request, timeout=60).outputs
    np.testing.assert_allclose(tf.make_ndarray(outputs["images"]), images, atol=1e-5)


@pytest.mark.parametrize("body,words", [
    ({"signature_name": "interpolate", "inputs": {"seed_a": 1, "seed_b": 2, "steps": 500}},
     "steps must be between 2 and 64"),
    ({"signature_name": "inpaint", "inputs": {"images": np.zeros((1, SIZE, SIZE, 1)).tolist(),
                                              "masks": (centre_mask(1) * 0.5).tolist()}},
     "masks must be binary"),
    ({"signature_name": "inpaint", "inputs": {"images": np.zeros((1, SIZE, SIZE, 1)).tolist(),
                                              "masks": centre_mask(1, size=8).tolist()}},
     "masks must be [batch, height, width, 1]"),
])
def test_served_bad_requests_get_a_400_and_the_server_keeps_serving(server, body, words):
    status, answer = rest(server, body)
    assert status == 400 and words in answer["error"], (status, answer)
    status, answer = rest(server, {"signature_name": "interpolate",
                                   "inputs": {"seed_a": 1, "seed_b": 2, "steps": 2}})
    assert status == 200, answer


# --- command line (python -m export.inpaint) -----------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding the tiny DCGAN's model.keras, as training writes it."""
    from training.files import atomic_save_model

    directory = tmp_path_factory.mktemp("run")
    atomic_save_model(tiny_dcgan(), directory / "model.keras")
    return directory


def write_png(path, pixels):
    path.write_bytes(png(np.asarray(pixels, np.uint8)))
    return path


def test_cli_inpaints_files_as_the_library_does(run_dir, tmp_path):
    from export import inpaint as cli

    rng = np.random.default_rng(2)
    photos = rng.integers(0, 256, (2, SIZE, SIZE), dtype=np.uint8)
    paths = [str(write_png(tmp_path / f"photo{i}.png", photo)) for i, photo in enumerate(photos)]
    mask = centre_mask(batch=1)[0, ..., 0]
    mask_path = str(write_png(tmp_path / "hole.png", mask * 255))  # one mask for both images
    assert cli.main(["inpaint", str(run_dir), "--images", *paths, "--masks", mask_path,
                     "--out", str(tmp_path / "out"), "--steps", "3", "--restarts", "2"]) == 0

    written = np.stack([np.asarray(Image.open(tmp_path / "out" / f"photo{i}.png")) for i in (0, 1)])
    expected = inpaint(tiny_dcgan(), photos[..., None] / 127.5 - 1.0, centre_mask(), steps=3,
                       restarts=2)["images"][..., 0]
    np.testing.assert_allclose(written, np.round((expected + 1) * 127.5), atol=1)  # PNG rounding
    np.testing.assert_array_equal(written[:, mask == 0], photos[:, mask == 0])  # context untouched


HOLE = centre_mask(batch=1)[0, ..., 0] * 255


@pytest.mark.parametrize("mask,words", [
    (HOLE // 2, "masks must be binary"),
    (HOLE[:8, :8], "masks must be [batch, height, width, 1]"),
    (HOLE * 0, "marks no missing pixel"),
    (HOLE * 0 + 255, "marks every pixel missing"),
    (None, "must be PNG or JPEG"),
    ("two", "one mask per image (1) or one for all; got 2"),
])
def test_cli_bad_inputs_get_the_libraries_one_line_error_and_exit_code_2(run_dir, tmp_path, capsys,
                                                                         mask, words):
    from export import inpaint as cli

    image = str(write_png(tmp_path / "photo.png", np.zeros((SIZE, SIZE), np.uint8)))
    if mask is None:
        masks = [str(tmp_path / "text.png")]
        (tmp_path / "text.png").write_bytes(b"not an image")
    elif isinstance(mask, str):
        masks = [str(write_png(tmp_path / f"m{i}.png", HOLE)) for i in range(2)]
    else:
        masks = [str(write_png(tmp_path / "mask.png", mask))]
    assert cli.main(["inpaint", str(run_dir), "--images", image, "--masks", *masks,
                     "--out", str(tmp_path / "out"), "--steps", "1", "--restarts", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and len(error.splitlines()) == 1, error
    assert not (tmp_path / "out").exists()


def test_cli_walk_strip_runs_from_the_first_seeds_sample_to_the_seconds(run_dir, tmp_path):
    from export import inpaint as cli
    from export.saved_model import latent_from_seeds
    from training.images import to_uint8

    model = tiny_dcgan()
    assert cli.main(["interpolate", str(run_dir / "model.keras"), "--seeds", "1", "7",
                     "--steps", "5", "--out", str(tmp_path / "strip.png")]) == 0
    strip = np.asarray(Image.open(tmp_path / "strip.png"))
    assert strip.shape == (SIZE + 4, 5 * (SIZE + 2) + 2)  # one row, make_grid's 2-pixel padding
    cells = [strip[2:2 + SIZE, 2 + i * (SIZE + 2):2 + i * (SIZE + 2) + SIZE] for i in range(5)]
    ends = to_uint8(model.generator(latent_from_seeds(tf.constant([1, 7], tf.int64), 8, "normal")))
    np.testing.assert_allclose(cells[0], ends[0, ..., 0], atol=1)  # generate_from_seed's images
    np.testing.assert_allclose(cells[-1], ends[1, ..., 0], atol=1)
    assert not np.array_equal(cells[2], cells[0]) and not np.array_equal(cells[2], cells[-1])

    assert cli.main(["interpolate", str(run_dir), "--seeds", "1", "7", "--steps", "5",
                     "--out", str(tmp_path / "walk.gif")]) == 0
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 5
    for index, cell in enumerate(cells):
        gif.seek(index)
        np.testing.assert_array_equal(np.asarray(gif.convert("L")), cell)  # grey GIF: lossless


@pytest.mark.parametrize("args,words", [
    (["--steps", "500", "--out", "strip.png"], "steps must be between 2 and 64"),
    (["--steps", "1", "--out", "strip.png"], "steps must be between 2 and 64"),
    (["--steps", "4", "--out", "strip.jpg"], "--out must end in .png (a strip) or .gif"),
])
def test_cli_bad_walks_are_one_clear_line(run_dir, tmp_path, capsys, args, words):
    from export import inpaint as cli

    args = [str(tmp_path / a) if a.startswith("strip") else a for a in args]
    assert cli.main(["interpolate", str(run_dir), "--seeds", "1", "2", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and len(error.splitlines()) == 1, error


def test_cli_refuses_a_model_without_latent_codes(tmp_path, capsys):
    from export import inpaint as cli

    pix2pix = zoo.build_model("pix2pix", image_shape=(32, 32, 1), input_channels=1,
                              generator_width=4, discriminator_width=4)
    pix2pix.save(tmp_path / "p2p.keras")
    assert cli.main(["interpolate", str(tmp_path / "p2p.keras"), "--seeds", "1", "2",
                     "--out", str(tmp_path / "strip.png")]) == 2
    assert "need an unconditional GAN" in capsys.readouterr().err


# --- the measurement (bench/inpainting.py) -------------------------------------------------------


@pytest.fixture(scope="module")
def bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "inpainting.py"
    spec = importlib.util.spec_from_file_location("bench_inpainting", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_masks_cover_what_they_say(bench):
    assert bench.centre_masks(3, 28).mean() == 0.25
    half = bench.half_masks(4, 28)
    assert half.mean() == 0.5 and half[0, :, :14].all() and half[1, :, 14:].all()
    np.testing.assert_array_equal(half[0] + half[1], np.ones_like(half[0]))  # left, then right
    blocks = bench.block_masks(20, 28, seed=3)
    np.testing.assert_array_equal(blocks, bench.block_masks(20, 28, seed=3))  # seeded
    assert not np.array_equal(blocks[0], blocks[1])  # a new draw per image
    missing = blocks.sum(axis=(1, 2, 3))
    assert (missing >= 49).all() and (missing <= 5 * 49).all()


def test_bench_scores_only_the_hole(bench):
    rng = np.random.default_rng(0)
    originals = rng.uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
    masks = bench.centre_masks(2, 28)
    outputs = originals + 0.2 * masks  # 0.1 off in [0, 1] intensities inside the hole
    outputs += 0.7 * (1 - masks) * (np.arange(28) % 2)[None, :, None, None]  # ignored: outside
    np.testing.assert_allclose(bench.hole_psnr(outputs, originals, masks), 20.0, atol=1e-3)
    np.testing.assert_allclose(bench.hole_ssim(originals, originals, masks), 1.0, atol=1e-6)
    filled = bench.mean_fill(originals, masks)
    known_mean = originals[0][masks[0] == 0].mean()
    np.testing.assert_allclose(filled[0][masks[0] == 1], known_mean, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_fashion_mnist_dcgan(tmp_path_factory):
    """A saved, untrained 28x28 DCGAN small enough for the bench's end-to-end runs."""
    path = tmp_path_factory.mktemp("bench") / "tiny.keras"
    zoo.build_model("dcgan", image_shape=(28, 28, 1), latent_dim=8, generator_width=8,
                    discriminator_width=8, kernel_size=3, seed=0).save(path)
    return str(path)


def test_bench_paired_comparison_counts_the_discordant_images(bench):
    zoo_right = np.array([1, 1, 1, 0, 0, 1, 1, 1], bool)
    baseline_right = np.array([1, 0, 0, 1, 0, 1, 1, 1], bool)
    paired = bench.paired_comparison(zoo_right, baseline_right)
    assert paired["only_this_right"] == 2 and paired["only_baseline_right"] == 1
    assert paired["difference"] == pytest.approx(1 / 8)
    per_image = np.array([0, 1, 1, -1, 0, 0, 0, 0], np.float64)
    assert paired["standard_error"] == pytest.approx(per_image.std(ddof=1) / np.sqrt(8))
    assert bench.paired_comparison(zoo_right, zoo_right)["standard_error"] == 0.0


def test_bench_runs_end_to_end_on_a_tiny_model(bench, tiny_fashion_mnist_dcgan, fashion_mnist_data_dir,
                                                 tmp_path, capsys):
    args = ["--model", tiny_fashion_mnist_dcgan, "--num-images", "4", "--steps", "2",
            "--restarts", "1", "--repeats", "1", "--timing-batches", "1", "2",
            "--grid-dir", str(tmp_path / "grids"), "--json-out", str(tmp_path / "r.json"),
            "--data-dir", fashion_mnist_data_dir]
    assert bench.main(args) == 0
    table = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_images"] == 4 and set(report["served"]) == {"1", "2"}
    for mask in bench.MASKS:
        for method in bench.METHODS:
            scores = report["results"][mask][method]
            assert 0 <= scores["accuracy"] <= 1 and -1 <= scores["ssim"] <= 1, (mask, method)
            assert f"| {mask} (" in table and f"| {method} |" in table
        paired = report["results"][mask]["zoo_vs_biharmonic"]
        assert paired["only_this_right"] + paired["only_baseline_right"] <= 4
        assert f"{mask}: zoo - biharmonic accuracy" in table
        grid = np.asarray(Image.open(tmp_path / "grids" / f"inpainting_{mask}.png"))
        assert grid.shape == (3 * (4 * 30 + 2), 3 * (4 * 30 + 2), 3)  # 4 rows x 4 columns, 3x


def test_bench_can_skip_the_lambda_0_search_and_set_window_and_first_image(
        bench, tiny_fashion_mnist_dcgan, fashion_mnist_data_dir, tmp_path, capsys):
    assert bench.main(["--model", tiny_fashion_mnist_dcgan, "--num-images", "2", "--steps", "2",
                       "--restarts", "1", "--repeats", "1", "--timing-batches", "1", "--masks",
                       "centre", "--no-lambda-0-ablation", "--window", "15", "--first-image", "5",
                       "--grid-dir", str(tmp_path), "--json-out", str(tmp_path / "r.json"),
                       "--data-dir", fashion_mnist_data_dir]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    results = report["results"]["centre"]
    assert "zoo, lambda 0" not in results and {"zoo", "zoo, no blending", "biharmonic"} <= set(results)
    assert report["options"]["window"] == 15 and report["first_image"] == 5
    assert report["served_options"]["window"] == bench.InpaintingOptions().window
    out = capsys.readouterr().out
    assert "| zoo, lambda 0 |" not in out and "2 test images from index 5 on" in out


def test_bench_first_image_selects_later_test_images(bench, fashion_mnist_data_dir):
    first_five, labels = bench.held_out_images(5, fashion_mnist_data_dir)
    later, later_labels = bench.held_out_images(2, fashion_mnist_data_dir, first=3)
    np.testing.assert_array_equal(later, first_five[3:5])
    np.testing.assert_array_equal(later_labels, labels[3:5])


@pytest.mark.parametrize("args, words", [
    (["--first-image", "-1"], "--first-image must be >= 0"),
    (["--first-image", "9999", "--num-images", "2"], "at most 10000"),
    (["--window", "0"], "--window must be >= 1"),
])
def test_bench_bad_ranges_are_one_clear_line(bench, args, words, capsys):
    assert bench.main(["--model", "unused.keras", *args]) == 2
    assert words in capsys.readouterr().err
