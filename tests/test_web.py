"""The web page, in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

The page is served by ``python -m export.serve`` at ``/`` and calls only TF Serving's REST API.
Each kind of model gets its panel tested and a screenshot written to the test's folder.
"""

import os

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import zoo
from export.saved_model import export_model
from export.web.browser import chromium_driver, chromium_paths, open_page

pytestmark = pytest.mark.skipif(
    not all(chromium_paths()) and os.environ.get("CI") != "true",  # CI installs them: never skipped
    reason="Debian's chromium and chromium-driver are not installed (bin/setup --test installs them)",
)
CARD = "# dcgan_tiny\n\n`dcgan`: Radford et al. 2015.\n\n## Quality\n| metric | value |\n|---|---|\n| `fid_fmnist_10k` | 99.0 |\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("web_models")
    export_model(zoo.build_model("dcgan", latent_dim=8, generator_width=8, discriminator_width=8, seed=0),
                 str(base), "dcgan_tiny")
    (base / "dcgan_tiny" / "MODEL_CARD.md").write_text(CARD)
    export_model(zoo.build_model("pix2pix", image_shape=(64, 64, 3), input_channels=1,
                                 generator_width=8, discriminator_width=8, seed=0),
                 str(base), "pix2pix_tiny")
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


def wait_for(browser, condition, seconds=30):
    return WebDriverWait(browser, seconds).until(lambda d: condition())


def loaded_images(article):
    """(naturalWidth, naturalHeight) of the decoded result images of a model's panels."""
    return [(int(img.get_attribute("naturalWidth")), int(img.get_attribute("naturalHeight")))
            for img in article.find_elements(By.CSS_SELECTOR, ".result img")
            if int(img.get_attribute("naturalWidth") or 0) > 0]


def photo_file(tmp_path, width, height, name="photo.png"):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return str(path)


def test_the_page_lists_every_served_model_with_its_card(browser, server):
    articles = page(browser, server)
    assert set(articles) == {"dcgan_tiny", "pix2pix_tiny"}
    assert browser.find_element(By.ID, "status").text == "2 model(s) served."
    assert "unconditional" in articles["dcgan_tiny"].find_element(By.CLASS_NAME, "kind").text
    assert "image-to-image" in articles["pix2pix_tiny"].find_element(By.CLASS_NAME, "kind").text
    card = articles["dcgan_tiny"].find_element(By.CSS_SELECTOR, "details.card")
    card.find_element(By.TAG_NAME, "summary").click()
    assert "fid_fmnist_10k" in card.text and "99.0" in card.text


def test_generate_from_seeds_shows_the_images(browser, server, tmp_path):
    article = page(browser, server)["dcgan_tiny"]
    article.find_element(By.XPATH, ".//button[text()='Generate']").click()
    images = wait_for(browser, lambda: len(loaded_images(article)) == 8 and loaded_images(article))
    assert set(images) == {(28, 28)}
    browser.save_screenshot(str(tmp_path / "unconditional.png"))


def test_a_photo_goes_through_an_image_to_image_model(browser, server, tmp_path):
    article = page(browser, server)["pix2pix_tiny"]
    article.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(photo_file(tmp_path, 128, 64))
    article.find_element(By.XPATH, ".//button[text()='Translate']").click()
    # input, result, and the before/after pair (input + result again)
    images = wait_for(browser, lambda: len(loaded_images(article)) == 4 and loaded_images(article))
    assert images == [(128, 64)] * 4
    browser.save_screenshot(str(tmp_path / "image_to_image.png"))


def test_an_api_error_is_shown_as_the_api_words_it(browser, server, tmp_path):
    article = page(browser, server)["pix2pix_tiny"]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"this is not an image")
    article.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(not_an_image))
    article.find_element(By.XPATH, ".//button[text()='Translate']").click()
    error = wait_for(browser, lambda: article.find_element(By.CSS_SELECTOR, ".error").text)
    assert "image_bytes must be PNG or JPEG" in error
    assert not loaded_images(article)


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
