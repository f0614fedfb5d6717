"""The models committed under saved_models/: loadable with TensorFlow alone, carded, configured."""

import os

import numpy as np
import pytest
import tensorflow as tf

from export.serving.layout import find_models

BASE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "saved_models")
RELEASED = sorted(find_models(BASE))


def test_the_dcgan_release_is_there():
    assert "dcgan_fashion_mnist" in RELEASED


@pytest.mark.parametrize("name", RELEASED)
def test_release_has_card_and_config_entry(name):
    assert os.path.isfile(os.path.join(BASE, name, "MODEL_CARD.md"))
    assert f'name: "{name}"' in open(os.path.join(BASE, "models.config")).read()


@pytest.mark.parametrize("name", RELEASED)
def test_release_generates_or_translates_images(name):
    versions = find_models(BASE)[name]
    loaded = tf.saved_model.load(str(versions[max(versions)]))
    if "generate_from_seed" in loaded.signatures:  # an unconditional GAN
        out = loaded.signatures["generate_from_seed"](seed=tf.constant([0, 1], tf.int64))
        images = out["images"].numpy()
        assert len(out["images_png_bytes"].numpy()) == 2
    else:  # an image-to-image GAN: translate a non-square image of each direction's channels
        directions = [s for s in ("a_to_b", "b_to_a") if s in loaded.signatures] or ["serving_default"]
        outputs = []
        for direction in directions:
            signature = loaded.signatures[direction]
            channels = signature.structured_input_signature[1]["images"].shape[-1]
            inputs = tf.random.stateless_uniform((2, 64, 128, channels), (0, 1), -1.0, 1.0)
            outputs.append(signature(images=inputs)["images"].numpy())
            assert outputs[-1].shape[:3] == (2, 64, 128)
        images = np.concatenate([o.reshape(-1) for o in outputs])
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.1  # a trained generator, not a constant
