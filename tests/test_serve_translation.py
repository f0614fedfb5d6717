"""export.serve over the image-to-image exports (pix2pix, CycleGAN), through REST and gRPC.

A good request (non-square, float or encoded images) is translated at its own height and width;
a wrong size, non-image bytes, mixed sizes, a wrong channel count or rank each get a 400 /
INVALID_ARGUMENT whose message says what is wrong, and the server keeps answering afterwards.
"""

from __future__ import annotations

import base64
import http.client
import io
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import zoo
from export.serve import ModelServer
from export.saved_model import export_model
from export.serving.repository import tf_error_message
from export.translation import image_to_image_archive

# Tiny models: pix2pix's 32x32 U-Net has depth 5 (stride 32), CycleGAN's ResNet stride 4.
BUILD = {
    "pix2pix": dict(image_shape=(32, 32, 3), input_channels=1, generator_width=8,
                    discriminator_width=8),
    "cyclegan": dict(image_shape=(32, 32, 1), generator_width=8, residual_blocks=1,
                     discriminator_width=8),
}
STRIDE = {"pix2pix": 32, "cyclegan": 4}
IN_CHANNELS = {"pix2pix": 1, "cyclegan": 1}
OUT_CHANNELS = {"pix2pix": 3, "cyclegan": 1}
BYTES_SIGNATURE = {("pix2pix", "serving_default"): "translate_bytes",
                   ("cyclegan", "a_to_b"): "a_to_b_bytes", ("cyclegan", "b_to_a"): "b_to_a_bytes"}
GOOD_SIZE = {"pix2pix": (32, 64), "cyclegan": (12, 20)}  # non-square multiples of the stride
OFF_SIZE = {"pix2pix": (32, 48), "cyclegan": (12, 18)}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- the server ------------------------------------------------------------------------------


class Client:
    """REST and gRPC clients of one running ``ModelServer``."""

    def __init__(self, server: ModelServer):
        self.rest_port = server.rest_port
        self.channel = grpc.insecure_channel(server.grpc_address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def rest(self, model, body):
        """(status, parsed JSON) of ``POST /v1/models/MODEL:predict``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=60)
        try:
            conn.request("POST", f"/v1/models/{model}:predict", body=json.dumps(body).encode())
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        return response.status, json.loads(payload)

    def grpc(self, model, signature, **inputs):
        """The PredictResponse's outputs as numpy arrays (raises grpc.RpcError)."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self.predictions.Predict(request, timeout=60)
        assert response.model_spec.signature_name == (signature or "serving_default")
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def grpc_error(self, model, signature, **inputs) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as failure:
            self.grpc(model, signature, **inputs)
        return failure.value


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """BASE with pix2pix/1 and cyclegan/1, exported once for the module."""
    base = tmp_path_factory.mktemp("translation_models")
    for name, hyperparameters in BUILD.items():
        model = zoo.build_model(name, seed=5, **hyperparameters)
        assert int(model.generator_stride) == STRIDE[name]
        export_model(model, str(base), name, 1, archive=image_to_image_archive(model))
    return base


@pytest.fixture(scope="module")
def client(base):
    server = ModelServer(base, "127.0.0.1", 0, 0, poll_seconds=0.5).start()
    handle = Client(server)
    yield handle
    handle.channel.close()
    server.stop()


@pytest.fixture(scope="module")
def loaded(base):
    """In-process ``tf.saved_model.load`` of each export (the reference outputs)."""
    return {name: tf.saved_model.load(str(base / name / "1")) for name in BUILD}


# -- helpers ---------------------------------------------------------------------------------


def images(name, size, channels=None, batch=2, seed=0):
    channels = IN_CHANNELS[name] if channels is None else channels
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch,) + tuple(size) + (channels,)).astype(np.float32)


def png(size, channels=1, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, tuple(size) + (channels,), np.uint8)
    return tf.io.encode_png(pixels).numpy()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def decoded_png(data: bytes) -> Image.Image:
    assert data.startswith(PNG_MAGIC), data[:16]
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_clear_rest_error(answer, status, *fragments):
    """A 400 whose ``error`` holds every fragment and none of TF's wrapper text."""
    assert status == 400, answer
    message = answer["error"]
    for fragment in fragments:
        assert fragment in message, message
    assert "Graph execution error" not in message and "[[{{node" not in message, message


def assert_clear_grpc_error(error: grpc.RpcError, *fragments):
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    for fragment in fragments:
        assert fragment in error.details(), error.details()
    assert "Graph execution error" not in error.details(), error.details()


def assert_still_serving(client, loaded):
    """A good CycleGAN request, by REST and gRPC, gives the in-process outputs."""
    x = images("cyclegan", GOOD_SIZE["cyclegan"], seed=9)
    expected = loaded["cyclegan"].signatures["a_to_b"](images=tf.constant(x))["images"].numpy()
    status, body = client.rest("cyclegan", {"signature_name": "a_to_b", "instances": x.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-5)
    outputs = client.grpc("cyclegan", "a_to_b", images=x)
    np.testing.assert_allclose(outputs["images"], expected, atol=1e-5)


# -- good requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,signature", [("pix2pix", ""), ("pix2pix", "serving_default"),
                                            ("cyclegan", "a_to_b"), ("cyclegan", "b_to_a")])
@pytest.mark.parametrize("request_format", ["instances", "inputs"])
def test_rest_translates_non_square_images_at_their_size(client, loaded, name, signature,
                                                         request_format):
    height, width = GOOD_SIZE[name]
    x = images(name, (height, width))
    body = {request_format: x.tolist()}
    if signature:
        body["signature_name"] = signature
    status, answer = client.rest(name, body)
    assert status == 200, answer
    result = np.asarray(answer["predictions" if request_format == "instances" else "outputs"])
    assert result.shape == (2, height, width, OUT_CHANNELS[name])
    assert np.all(np.abs(result) <= 1.0)  # tanh outputs in [-1, 1]
    if name == "cyclegan":  # deterministic (pix2pix keeps its dropout at inference)
        expected = loaded[name].signatures[signature](images=tf.constant(x))["images"]
        np.testing.assert_allclose(result, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("name,signature", [("pix2pix", "serving_default"),
                                            ("cyclegan", "b_to_a")])
def test_grpc_translates_non_square_images_at_their_size(client, loaded, name, signature):
    height, width = GOOD_SIZE[name]
    x = images(name, (height, width), batch=1)
    outputs = client.grpc(name, signature, images=x)
    assert list(outputs) == ["images"]
    assert outputs["images"].shape == (1, height, width, OUT_CHANNELS[name])
    if name == "cyclegan":
        expected = loaded[name].signatures[signature](images=tf.constant(x))["images"]
        np.testing.assert_allclose(outputs["images"], expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("name,signature", [("pix2pix", "serving_default"),
                                            ("cyclegan", "a_to_b")])
def test_bytes_signature_turns_png_and_jpeg_into_png(client, loaded, name, signature):
    bytes_signature = BYTES_SIGNATURE[(name, signature)]
    height, width = GOOD_SIZE[name]
    sent = [png((height, width), seed=1),
            tf.io.encode_jpeg(np.full((height, width, 3), 200, np.uint8)).numpy()]  # colour JPEG
    status, answer = client.rest(name, {"signature_name": bytes_signature,
                                        "instances": [b64(data) for data in sent]})
    assert status == 200, answer
    assert [set(row) for row in answer["predictions"]] == [{"b64"}, {"b64"}]
    returned = [base64.b64decode(row["b64"]) for row in answer["predictions"]]
    mode = "RGB" if OUT_CHANNELS[name] == 3 else "L"
    for data in returned:
        image = decoded_png(data)
        assert image.size == (width, height) and image.mode == mode
    if name == "cyclegan":  # deterministic: the same PNG as the in-process call
        expected = loaded[name].signatures[bytes_signature](
            image_bytes=tf.constant(sent[:1]))["image_png_bytes"].numpy()
        assert returned[0] == expected[0]

    outputs = client.grpc(name, bytes_signature, image_bytes=np.array(sent[:1], dtype=object))
    assert list(outputs) == ["image_png_bytes"] and outputs["image_png_bytes"].shape == (1,)
    assert decoded_png(outputs["image_png_bytes"][0]).size == (width, height)


def test_bytes_signature_takes_an_empty_batch(client):
    status, answer = client.rest("pix2pix", {"signature_name": "translate_bytes", "inputs": []})
    assert (status, answer) == (200, {"outputs": []})


# -- wrong sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize("name,signature", [("pix2pix", "serving_default"),
                                            ("cyclegan", "b_to_a")])
@pytest.mark.parametrize("size", ["height_and_width", "width_only", "height_only"])
def test_size_off_the_stride_is_refused_by_floats_and_padded_by_bytes(client, loaded, name,
                                                                      signature, size):
    """The float signature names the stride; the bytes one pads to it and crops back."""
    good, off = GOOD_SIZE[name], OFF_SIZE[name]
    height_width = {"height_and_width": (good[0] + 2, off[1]), "width_only": (good[0], off[1]),
                    "height_only": (off[1], good[1])}[size]
    stride = f"multiples of {STRIDE[name]}"
    got = f"[{height_width[0]} {height_width[1]}]"  # the refused [height, width]
    x = images(name, height_width, batch=1)

    status, answer = client.rest(name, {"signature_name": signature, "instances": x.tolist()})
    assert_clear_rest_error(answer, status, stride, signature, got)
    assert_clear_grpc_error(client.grpc_error(name, signature, images=x), stride, signature, got)

    bytes_signature = BYTES_SIGNATURE[(name, signature)]
    encoded = png(height_width)
    status, answer = client.rest(name, {"signature_name": bytes_signature,
                                        "instances": [b64(encoded)]})
    assert status == 200, answer
    returned = decoded_png(base64.b64decode(answer["predictions"][0]["b64"]))
    assert returned.size == (height_width[1], height_width[0])  # PIL: (width, height)
    outputs = client.grpc(name, bytes_signature, image_bytes=np.array([encoded], object))
    assert decoded_png(outputs["image_png_bytes"][0]).size == (height_width[1], height_width[0])
    assert_still_serving(client, loaded)


def test_empty_image_is_refused_as_a_wrong_size(client, loaded):
    """0 is a multiple of every stride, but CycleGAN's reflection padding cannot take it."""
    error = client.grpc_error("cyclegan", "a_to_b", images=np.zeros((1, 0, 4, 1), np.float32))
    assert_clear_grpc_error(error, "positive multiples of 4", "[0 4]")
    assert_still_serving(client, loaded)


# -- bytes that are not (usable) images ------------------------------------------------------


NOT_IMAGES = {
    "text": b"not an image",
    "empty": b"",
    "gif": b"GIF89a" + bytes(32),
    "png-magic-in-the-middle": b"xx" + PNG_MAGIC,
}


@pytest.mark.parametrize("what", sorted(NOT_IMAGES))
@pytest.mark.parametrize("name,signature", [("pix2pix", "translate_bytes"),
                                            ("cyclegan", "a_to_b_bytes")])
def test_non_image_bytes_are_refused_clearly(client, loaded, name, signature, what):
    data = NOT_IMAGES[what]
    status, answer = client.rest(name, {"signature_name": signature, "instances": [b64(data)]})
    assert_clear_rest_error(answer, status, "image_bytes must be PNG or JPEG", signature)
    error = client.grpc_error(name, signature, image_bytes=np.array([data], dtype=object))
    assert_clear_grpc_error(error, "image_bytes must be PNG or JPEG", signature)
    assert_still_serving(client, loaded)


def test_non_image_in_a_batch_is_named_by_its_index(client, loaded):
    good = png(GOOD_SIZE["cyclegan"])
    batch = [good, good, b"not an image", good]
    status, answer = client.rest("cyclegan", {"signature_name": "b_to_a_bytes",
                                              "instances": [b64(data) for data in batch]})
    assert_clear_rest_error(answer, status, "image_bytes must be PNG or JPEG",
                            "not PNG or JPEG at batch index] [2]")
    assert_still_serving(client, loaded)


def test_corrupt_png_gets_the_decoders_message(client, loaded):
    data = png(GOOD_SIZE["pix2pix"])[:40]  # PNG magic, truncated
    status, answer = client.rest("pix2pix", {"signature_name": "translate_bytes",
                                             "instances": [b64(data)]})
    assert_clear_rest_error(answer, status, "Invalid PNG")
    error = client.grpc_error("pix2pix", "translate_bytes", image_bytes=np.array([data], object))
    assert_clear_grpc_error(error, "Invalid PNG")
    assert_still_serving(client, loaded)


def test_images_of_mixed_sizes_in_one_request_are_refused(client, loaded):
    batch = [png((12, 20)), png((12, 24))]
    status, answer = client.rest("cyclegan", {"signature_name": "a_to_b_bytes",
                                              "instances": [b64(data) for data in batch]})
    assert_clear_rest_error(answer, status, "must have the same height and width",
                            "[[12 20 1][12 24 1]]")
    error = client.grpc_error("cyclegan", "a_to_b_bytes", image_bytes=np.array(batch, object))
    assert_clear_grpc_error(error, "must have the same height and width")
    assert_still_serving(client, loaded)


# -- wrong channels, rank and dtype of float images -------------------------------------------


WRONG_FLOATS = {
    "rank-3": (np.zeros((1, 32, 32), np.float32), "has shape [1, 32, 32]"),
    "rank-5": (np.zeros((1, 1, 32, 32, 1), np.float32), "has shape [1, 1, 32, 32, 1]"),
    "3-channels-to-1": (np.zeros((1, 32, 32, 3), np.float32), "has shape [1, 32, 32, 3]"),
    "2-channels-to-1": (np.zeros((1, 32, 32, 2), np.float32), "has shape [1, 32, 32, 2]"),
}


@pytest.mark.parametrize("what", sorted(WRONG_FLOATS))
@pytest.mark.parametrize("name,signature", [("pix2pix", "serving_default"),
                                            ("cyclegan", "b_to_a")])
def test_wrong_channels_or_rank_are_refused(client, loaded, name, signature, what):
    array, shape = WRONG_FLOATS[what]
    expects = f'signature "{signature}" expects [?, ?, ?, 1]'
    status, answer = client.rest(name, {"signature_name": signature, "inputs": array.tolist()})
    assert_clear_rest_error(answer, status, shape, expects)
    error = client.grpc_error(name, signature, images=array)
    assert_clear_grpc_error(error, shape, expects)
    assert_still_serving(client, loaded)


def test_wrong_dtype_and_input_name_are_refused(client, loaded):
    x = np.zeros((1, 12, 20, 1), np.int64)
    error = client.grpc_error("cyclegan", "a_to_b", images=x)
    assert_clear_grpc_error(error, "has dtype int64", "expects float32")
    error = client.grpc_error("cyclegan", "a_to_b", image_bytes=np.array([png((12, 20))], object))
    assert_clear_grpc_error(error, "Sent extra: {image_bytes}", "Missing but required: {images}")
    status, answer = client.rest("cyclegan", {"signature_name": "a_to_b_bytes",
                                              "instances": x.tolist()})
    assert_clear_rest_error(answer, status, "image_bytes")
    assert_still_serving(client, loaded)


# -- the server survives --------------------------------------------------------------------


def test_server_still_translates_after_every_bad_request(client, loaded):
    """Last in the module: the server answered all of the above and still serves both models."""
    assert_still_serving(client, loaded)
    status, answer = client.rest("pix2pix", {"instances": images("pix2pix", (64, 32)).tolist()})
    assert status == 200 and np.asarray(answer["predictions"]).shape == (2, 64, 32, 3), answer


# -- the error text ----------------------------------------------------------------------------


def test_tf_error_message_keeps_only_the_ops_words():
    wrapped = ("Graph execution error:\n\nDetected at node a/Assert defined at (most recent call "
               "last):\n  File \"x.py\", line 6, in <module>\n\n  File \"x.py\", line 4, in f\n\n"
               "assertion failed: [boom] [1 2]\n\t [[{{node a/Assert}}]] [Op:__inference_f_22]")
    assert tf_error_message(wrapped) == "assertion failed: [boom] [1 2]"
    unavailable = ("Graph execution error:\n\nDetected at node d/DecodeImage defined at (most "
                   "recent call last):\n<stack traces unavailable>\nInput is empty.\n\t "
                   "[[{{node d/DecodeImage}}]] [Op:__inference_signature_wrapper_7]")
    assert tf_error_message(unavailable) == "Input is empty."
    eager = ("{{function_node __wrapped__DecodeImage_device_/job:localhost/replica:0/task:0/"
             "device:CPU:0}} Unknown image file format. [Op:DecodeImage]")
    assert tf_error_message(eager) == "Unknown image file format."
    assert tf_error_message("plain message") == "plain message"


def test_printed_example_requests_fit_the_model_kind():
    from export.serve import curl_example

    translation = curl_example("127.0.0.1:8501", "p2p", ["serving_default", "translate_bytes"])
    assert '"signature_name": "translate_bytes"' in translation and "base64 -w0 photo.png" in translation
    assert "generate_from_seed" not in translation
    cycle = curl_example("127.0.0.1:8501", "c", ["a_to_b", "a_to_b_bytes", "b_to_a", "b_to_a_bytes"])
    assert '"signature_name": "a_to_b_bytes"' in cycle
    gan = curl_example("127.0.0.1:8501", "d", ["serving_default", "generate_from_seed"])
    assert '"signature_name": "generate_from_seed", "instances": [1, 2]' in gan
    # an unconditional GAN's inpaint_bytes needs an image and a mask: not a one-file example
    served_gan = curl_example("127.0.0.1:8501", "d", ["serving_default", "generate_from_seed",
                                                      "inpaint", "inpaint_bytes", "interpolate"])
    assert '"signature_name": "generate_from_seed", "instances": [1, 2]' in served_gan
    assert "inpaint_bytes" not in served_gan
