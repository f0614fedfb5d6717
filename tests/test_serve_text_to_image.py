"""export.serve over the text-to-image exports (GAN-CLS, StackGAN's two stages), through REST and
gRPC: a (caption, seed) pair gives the in-process images (StackGAN also its Stage-I draw), and a
bad caption gets a 400 / INVALID_ARGUMENT naming the problem while the server keeps answering.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tensorflow as tf

import zoo
from export.saved_model import export_model
from export.serve import ModelServer
from tests.test_serve_translation import (Client, assert_clear_grpc_error, assert_clear_rest_error,
                                          decoded_png)
from tests.test_text_to_image import SMALL_OF, TEXT_TO_IMAGE

CAPTIONS = ["a red circle on the left", "a big blue box at the top"]
SEEDS = [4, 11]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("text_to_image_models")
    for name in TEXT_TO_IMAGE:
        export_model(zoo.build_model(name, **SMALL_OF[name]), str(base), name, 1)
    return base


@pytest.fixture(scope="module")
def client(base):
    server = ModelServer(base, "127.0.0.1", 0, 0, poll_seconds=0.5).start()
    handle = Client(server)
    yield handle
    handle.channel.close()
    server.stop()


@pytest.fixture(scope="module")
def expected(base):
    """In-process outputs of each export's ``generate_from_text`` for CAPTIONS and SEEDS."""
    out = {}
    for name in TEXT_TO_IMAGE:
        signature = tf.saved_model.load(str(base / name / "1")).signatures["generate_from_text"]
        out[name] = {key: value.numpy() for key, value in
                     signature(text=tf.constant(CAPTIONS), seed=tf.constant(SEEDS, tf.int64)).items()}
    return out


def image_outputs(name):
    return ["images", "stage1_images"] if name == "stackgan" else ["images"]


@pytest.mark.parametrize("name", TEXT_TO_IMAGE)
def test_rest_and_grpc_give_the_in_process_images(client, expected, name):
    instances = [{"text": text, "seed": seed} for text, seed in zip(CAPTIONS, SEEDS)]
    status, body = client.rest(name, {"signature_name": "generate_from_text", "instances": instances})
    assert status == 200, body
    outputs = client.grpc(name, "generate_from_text", text=np.array(CAPTIONS, dtype=object),
                          seed=np.array(SEEDS, np.int64))
    for key in image_outputs(name):
        reference = expected[name][key]
        rest = np.array([prediction[key] for prediction in body["predictions"]])
        np.testing.assert_allclose(rest, reference, atol=1e-5)
        np.testing.assert_allclose(outputs[key], reference, atol=1e-5)
        png = base64.b64decode(body["predictions"][0][f"{key}_png_bytes"]["b64"])
        assert decoded_png(png).size == reference.shape[2:0:-1]
        assert decoded_png(outputs[f"{key}_png_bytes"][1]).size == reference.shape[2:0:-1]
    if name == "stackgan":  # Stage-II draws 4x Stage-I's side
        assert expected[name]["images"].shape[1] == 4 * expected[name]["stage1_images"].shape[1]


@pytest.mark.parametrize("name", TEXT_TO_IMAGE)
def test_bad_captions_are_refused_clearly_and_the_server_keeps_answering(client, expected, name):
    status, body = client.rest(name, {"signature_name": "generate_from_text_default_seed",
                                      "instances": [{"text": "zzz qqq"}]})
    assert_clear_rest_error(body, status, "at least one word")
    error = client.grpc_error(name, "generate_from_text", text=np.array(["", "a red box"], dtype=object),
                              seed=np.array([1, 2], np.int64))
    assert_clear_grpc_error(error, "must not be empty")
    error = client.grpc_error(name, "generate_from_text", text=np.array(CAPTIONS, dtype=object),
                              seed=np.array([1], np.int64))
    assert_clear_grpc_error(error, "same batch size")
    outputs = client.grpc(name, "generate_from_text", text=np.array(CAPTIONS, dtype=object),
                          seed=np.array(SEEDS, np.int64))
    np.testing.assert_allclose(outputs["images"], expected[name]["images"], atol=1e-5)
