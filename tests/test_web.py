"""The web page, in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

The page is served by ``python -m export.serve`` at ``/`` and calls only TF Serving's REST API.
Each kind of model (unconditional, image-to-image, super-resolution, text-to-image) gets its
panels tested on a tiny untrained export and a screenshot written to the test's folder.
"""

import os

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By

import zoo
from export.saved_model import export_model
from export.web.browser import (button, choose_file, chromium_driver, chromium_paths, draw_stroke,
                                fill, open_page, panel, result_images, screenshot, slide, wait_for,
                                wait_for_images)
from tests.test_super_resolution import TINY as TINY_SRRESNET
from tests.test_text_to_image import SMALL as TINY_GAN_CLS

pytestmark = pytest.mark.skipif(
    not all(chromium_paths()) and os.environ.get("CI") != "true",  # CI installs them: never skipped
    reason="Debian's chromium and chromium-driver are not installed (bin/setup --test installs them)",
)
CARD = "# dcgan_tiny\n\n`dcgan`: Radford et al. 2015.\n\n## Quality\n| metric | value |\n|---|---|\n| `fid_fmnist_10k` | 99.0 |\n"
KINDS = {"dcgan_tiny": "unconditional", "pix2pix_tiny": "image-to-image",
         "srresnet_tiny": "super-resolution", "gan_cls_tiny": "text-to-image"}


def visible(model, gain):
    """``model`` with its generator's last kernel times ``gain``: an untrained generator
    (N(0, 0.02) weights) draws every image within a level or two of grey, so different seeds
    would give the same PNG and the page's images could not be told apart."""
    last = [layer for layer in model.generator.layers if hasattr(layer, "kernel")][-1]
    last.kernel.assign(last.kernel * gain)
    return model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("web_models")
    export_model(visible(zoo.build_model("dcgan", latent_dim=8, generator_width=8, discriminator_width=8,
                                         seed=0), 500.0), str(base), "dcgan_tiny")
    (base / "dcgan_tiny" / "MODEL_CARD.md").write_text(CARD)
    export_model(zoo.build_model("pix2pix", image_shape=(64, 64, 3), input_channels=1,
                                 generator_width=8, discriminator_width=8, seed=0),
                 str(base), "pix2pix_tiny")
    export_model(zoo.build_model("srresnet", **TINY_SRRESNET), str(base), "srresnet_tiny")
    export_model(visible(zoo.build_model("gan_cls", **TINY_GAN_CLS), 10000.0), str(base), "gan_cls_tiny")
    return base


@pytest.fixture(scope="module")
def server(base):
    from export.serve import ModelServer

    with ModelServer(str(base), rest_port=0, grpc_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


def page(browser, server):
    return open_page(browser, f"http://{server.rest_address}/")


def photo_file(tmp_path, width, height, name="photo.png"):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return str(path)


def sources(element, selector=".result img"):
    return [img.get_attribute("src") for img in element.find_elements(By.CSS_SELECTOR, selector)]


def test_the_page_lists_every_served_model_with_its_card(browser, server):
    articles = page(browser, server)
    assert set(articles) == set(KINDS)
    assert browser.find_element(By.ID, "status").text == f"{len(KINDS)} model(s) served."
    for name, kind in KINDS.items():
        assert articles[name].find_element(By.CLASS_NAME, "kind").text.startswith(kind)
    card = articles["dcgan_tiny"].find_element(By.CSS_SELECTOR, "details.card")
    card.find_element(By.TAG_NAME, "summary").click()
    assert "fid_fmnist_10k" in card.text and "99.0" in card.text


def test_generate_from_seeds_shows_the_images(browser, server, tmp_path):
    article = page(browser, server)["dcgan_tiny"]
    button(article, "Generate").click()
    images = wait_for_images(browser, article, 8)
    assert set(images) == {(28, 28)}
    screenshot(article, tmp_path / "unconditional.png")


def test_the_interpolation_strip_walks_from_seed_to_seed(browser, server):
    article = page(browser, server)["dcgan_tiny"]
    walk = panel(article, "Walk through the latent space")
    fill(walk, "seed_a", 3)
    fill(walk, "seed_b", 4)
    fill(walk, "steps", 5)
    button(walk, "Interpolate").click()
    assert wait_for_images(browser, walk, 5, selector=".strip img") == [(28, 28)] * 5
    strip, frame = sources(walk, ".strip img"), walk.find_element(By.CSS_SELECTOR, ".frame img")
    assert len(set(strip)) == 5  # five different images
    assert frame.get_attribute("src") == strip[0]
    slide(browser, walk.find_element(By.CSS_SELECTOR, "input[aria-label='interpolation step']"), 4)
    assert frame.get_attribute("src") == strip[4]
    # The walk's ends are the seeds' own samples.
    samples = panel(article, "Sample from seeds")
    fill(samples, "first seed", 3)
    fill(samples, "images", 2)
    button(samples, "Generate").click()
    wait_for_images(browser, samples, 2)
    assert sources(samples) == [strip[0], strip[4]]


def test_inpainting_fills_a_drawn_mask_and_refuses_an_empty_one(browser, server):
    article = page(browser, server)["dcgan_tiny"]
    inpaint = panel(article, "Inpaint")
    canvas = inpaint.find_element(By.CSS_SELECTOR, "canvas.mask")
    button(inpaint, "Use a sample").click()
    wait_for(browser, lambda: canvas.get_attribute("width") == "28" and browser.execute_script(
        "return arguments[0].getContext('2d').getImageData(0, 0, 28, 28).data.some(v => v > 0)", canvas))
    button(inpaint, "Inpaint").click()  # nothing drawn yet: the API says why it refuses
    error = wait_for(browser, lambda: inpaint.find_element(By.CSS_SELECTOR, ".error").text)
    assert "a mask marks no missing pixel, nothing to inpaint" in error
    draw_stroke(browser, canvas, (0.3, 0.5), (0.7, 0.5))
    white = browser.execute_script(
        "const d = arguments[0].getContext('2d').getImageData(0, 0, 28, 28).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] === 255 && d[i + 1] === 255; return n;",
        canvas)
    assert 20 < white < 28 * 28 / 2  # a stroke, not the whole image
    button(inpaint, "Inpaint").click()
    assert wait_for_images(browser, inpaint, 1) == [(28, 28)]
    assert not inpaint.find_element(By.CSS_SELECTOR, ".error").is_displayed()


def test_a_photo_goes_through_an_image_to_image_model(browser, server, tmp_path):
    article = page(browser, server)["pix2pix_tiny"]
    choose_file(article, photo_file(tmp_path, 128, 64))
    button(article, "Translate").click()
    # input, result, and the before/after pair (result under the input)
    assert wait_for_images(browser, article, 4) == [(128, 64)] * 4
    screenshot(article, tmp_path / "image_to_image.png")


def test_a_photo_is_upscaled_beside_it_with_a_before_after_view(browser, server, tmp_path):
    article = page(browser, server)["srresnet_tiny"]
    choose_file(article, photo_file(tmp_path, 30, 20))
    button(article, "Upscale").click()
    # input, result 4x, then the before/after pair: the result under the input
    assert wait_for_images(browser, article, 4) == [(30, 20), (120, 80), (120, 80), (30, 20)]
    before = article.find_element(By.CSS_SELECTOR, ".compare img.before")
    after = article.find_element(By.CSS_SELECTOR, ".compare img:not(.before)")
    assert before.size == after.size  # the input is shown at the result's size
    assert before.get_attribute("src") == sources(article)[0]
    slide(browser, article.find_element(By.CSS_SELECTOR, "input[aria-label='before/after']"), 30)
    assert before.value_of_css_property("clip-path") == "inset(0px 70% 0px 0px)"
    screenshot(article, tmp_path / "super_resolution.png")


def test_a_caption_gives_images_and_a_seed_reproduces_them(browser, server, tmp_path):
    article = page(browser, server)["gan_cls_tiny"]
    caption = article.find_element(By.CSS_SELECTOR, "textarea[aria-label=caption]")
    examples = article.find_elements(By.CSS_SELECTOR, ".examples button")
    assert len(examples) == 3 and caption.get_attribute("value") == examples[0].text
    examples[1].click()
    assert caption.get_attribute("value") == examples[1].text
    fill(article, "seed", 5)
    fill(article, "images", 2)
    button(article, "Generate").click()
    assert wait_for_images(browser, article, 2) == [(64, 64)] * 2
    seeds_5_and_6 = sources(article)
    assert seeds_5_and_6[0] != seeds_5_and_6[1]
    screenshot(article, tmp_path / "text_to_image.png")
    fill(article, "seed", 6)
    fill(article, "images", 1)
    button(article, "Generate").click()
    wait_for(browser, lambda: len(sources(article)) == 1 and result_images(article))
    assert sources(article) == seeds_5_and_6[1:]


@pytest.mark.parametrize("model, act, words", [
    ("pix2pix_tiny", "not_an_image", "image_bytes must be PNG or JPEG"),
    ("gan_cls_tiny", "unknown_words", "captions need at least one word of the model"),
])
def test_an_api_error_is_shown_as_the_api_words_it(browser, server, tmp_path, model, act, words):
    article = page(browser, server)[model]
    if act == "not_an_image":
        not_an_image = tmp_path / "notes.png"
        not_an_image.write_bytes(b"this is not an image")
        choose_file(article, not_an_image)
        button(article, "Translate").click()
    else:
        fill(article, "caption", "zzz qqq")
        button(article, "Generate").click()
    error = wait_for(browser, lambda: article.find_element(By.CSS_SELECTOR, ".error").text)
    assert words in error
    assert not result_images(article)


def test_the_page_can_be_turned_off(base):
    import urllib.error
    import urllib.request

    from export.serve import ModelServer

    with ModelServer(str(base), rest_port=0, grpc_port=0, web_page=False) as running:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{running.rest_address}/")
        assert refused.value.code == 404
        with urllib.request.urlopen(f"http://{running.rest_address}/v1/models/dcgan_tiny") as answer:
            assert answer.status == 200  # the API itself is unchanged
