"""``python -m export.translate``: image files through an exported translation model's bytes signature."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from export import translate
from export.saved_model import export_model


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    pix2pix = zoo.build_model("pix2pix", image_shape=(32, 32, 3), input_channels=1, generator_width=4,
                              discriminator_width=4, test_time_dropout=False)
    cyclegan = zoo.build_model("cyclegan", image_shape=(32, 32, 1), generator_width=4, residual_blocks=1,
                               discriminator_width=4)
    export_model(pix2pix, str(base), "p2p", 1)
    export_model(cyclegan, str(base), "cycle", 1)
    return base, pix2pix, cyclegan


def write_png(path, height, width, channels):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    path.write_bytes(tf.io.encode_png(pixels).numpy())
    return pixels


def test_translates_a_file_like_the_generator(exports, tmp_path):
    base, pix2pix, _ = exports
    pixels = write_png(tmp_path / "in.png", 32, 64, 1)
    assert translate.main([str(base / "p2p"), str(tmp_path / "in.png"), "--out", str(tmp_path / "out")]) == 0
    output = tf.io.decode_png((tmp_path / "out" / "in.png").read_bytes()).numpy()
    expected = pix2pix.generator(pixels[None].astype(np.float32) / 127.5 - 1.0)[0]
    np.testing.assert_allclose(output, np.clip(np.round((np.asarray(expected) + 1) * 127.5), 0, 255), atol=1)


def test_cyclegan_needs_a_direction_and_takes_either(exports, tmp_path, capsys):
    base, _, cyclegan = exports
    write_png(tmp_path / "boot.png", 32, 32, 1)
    args = [str(base / "cycle" / "1"), str(tmp_path / "boot.png"), "--out", str(tmp_path)]
    assert translate.main(args) == 2
    assert "--direction (a_to_b, b_to_a)" in capsys.readouterr().err
    assert translate.main(args + ["--direction", "b_to_a"]) == 0
    assert tf.io.decode_png((tmp_path / "boot.png").read_bytes()).shape == (32, 32, 1)


def test_a_file_of_any_size_comes_back_at_its_size(exports, tmp_path):
    base = exports[0]
    write_png(tmp_path / "odd.png", 49, 37, 1)  # not multiples of the U-Net's stride 32
    assert translate.main([str(base / "p2p"), str(tmp_path / "odd.png"), "--out", str(tmp_path)]) == 0
    assert tf.io.decode_png((tmp_path / "odd.png").read_bytes()).shape == (49, 37, 3)


@pytest.mark.parametrize("content,message", [
    ("text", "must be PNG or JPEG"),
    ("empty", "must be PNG or JPEG"),
])
def test_bad_files_are_one_clear_line(exports, tmp_path, capsys, content, message):
    base = exports[0]
    path = tmp_path / "bad.png"
    path.write_bytes(b"not an image" if content == "text" else b"")
    assert translate.main([str(base / "p2p"), str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and len(err.splitlines()) == 1


def test_a_model_that_does_not_translate_is_refused(tmp_path, capsys):
    export_model(zoo.build_model("dcgan", latent_dim=8), str(tmp_path), "gan", 1)
    write_png(tmp_path / "x.png", 32, 32, 1)
    assert translate.main([str(tmp_path / "gan"), str(tmp_path / "x.png")]) == 2
    assert "not an image-to-image or super-resolution export" in capsys.readouterr().err
