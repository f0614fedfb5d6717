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
    assert (searched["loss"] < 0.5 * start["loss"]).all(), (start["loss"], searched["loss"])
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
