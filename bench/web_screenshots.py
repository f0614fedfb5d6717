"""Screenshots of the web page (``python -m export.serve``, at ``/``), one per kind of model.

    python bench/web_screenshots.py MODEL_DIR [MODEL_DIR ...] [--out docs/images]

Each MODEL_DIR is a served model's directory (``BASE/NAME``, holding ``VERSION/`` and perhaps
``MODEL_CARD.md``); they are linked into one temporary base, served with ``export.serve``'s
``ModelServer`` and driven in headless Chromium with the tests' helpers
(``export.web.browser``). For the first model of each kind the page shows, its panels are used
as a person would and that model's card is saved as ``OUT/web_<kind>.png``:

- unconditional: 16 images from seeds 0-15; where the export has them, the walk between two
  seeds (slider in the middle) and inpainting of a sample under a drawn stroke;
- image-to-image: a held-out photo (``--photo``; grey, for a colouriser) -> result and
  before/after view;
- super-resolution: the bicubic 4x downscale of a held-out photo (``--sr-photo``) -> 4x result;
- text-to-image: the page's first example caption, seeds 0-7.

Needs Debian's ``chromium`` and ``chromium-driver`` and the photos of ``training.image_pairs``
(Debian ``opencv-doc``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.web import browser as page  # noqa: E402  (after the path line, like the other benches)

KIND_FILES = {"unconditional": "web_unconditional.png", "image-to-image": "web_image_to_image.png",
              "super-resolution": "web_super_resolution.png", "text-to-image": "web_text_to_image.png"}


def kind_of(article):
    """The kinds the page lists for a model ("unconditional", "image-to-image", ...)."""
    from selenium.webdriver.common.by import By

    words = article.find_element(By.CLASS_NAME, "kind").text.split(" · ")[0]
    return [kind.strip() for kind in words.split(",")]


def has_panel(article, title):
    try:
        page.panel(article, title)
        return True
    except LookupError:
        return False


def unconditional(driver, article, inputs):
    samples = page.panel(article, "Sample from seeds")
    page.fill(samples, "first seed", 0)
    page.fill(samples, "images", 16)
    page.button(samples, "Generate").click()
    page.wait_for_images(driver, samples, 16, seconds=inputs.seconds)
    if has_panel(article, "Walk through the latent space"):
        from selenium.webdriver.common.by import By

        walk = page.panel(article, "Walk through the latent space")
        page.fill(walk, "seed_a", 0)
        page.fill(walk, "seed_b", 7)
        page.fill(walk, "steps", 12)
        page.button(walk, "Interpolate").click()
        page.wait_for_images(driver, walk, 12, seconds=inputs.seconds, selector=".strip img")
        page.slide(driver, walk.find_element(By.CSS_SELECTOR, "input[type=range]"), 6)
    if has_panel(article, "Inpaint"):
        from selenium.webdriver.common.by import By

        inpaint = page.panel(article, "Inpaint")
        page.fill(inpaint, "seed", 3)
        page.button(inpaint, "Use a sample").click()
        time.sleep(1)  # the sample is decoded into the canvas
        page.draw_stroke(driver, inpaint.find_element(By.CSS_SELECTOR, "canvas.mask"), (0.2, 0.5), (0.8, 0.5))
        page.button(inpaint, "Inpaint").click()
        page.wait_for_images(driver, inpaint, 1, seconds=inputs.seconds)


def image_to_image(driver, article, inputs):
    page.choose_file(article, inputs.photo)
    page.button(article, "Translate").click()
    page.wait_for_images(driver, article, 4, seconds=inputs.seconds)


def super_resolution(driver, article, inputs):
    page.choose_file(article, inputs.sr_photo)
    page.button(article, "Upscale").click()
    page.wait_for_images(driver, article, 4, seconds=inputs.seconds)


def text_to_image(driver, article, inputs):
    from selenium.webdriver.common.by import By

    article.find_elements(By.CSS_SELECTOR, ".examples button")[0].click()
    page.fill(article, "seed", 0)
    page.fill(article, "images", 8)
    page.button(article, "Generate").click()
    page.wait_for_images(driver, article, 8, seconds=inputs.seconds)


DRIVERS = {"unconditional": unconditional, "image-to-image": image_to_image,
           "super-resolution": super_resolution, "text-to-image": text_to_image}


def write_photos(directory, photo, sr_photo):
    """The upload files: ``photo`` at a 256-pixel shorter side in grey (what a colouriser takes)
    and the bicubic 4x downscale of ``sr_photo`` (``training.super_resolution_data``'s)."""
    import numpy as np
    from PIL import Image

    from training import image_pairs
    from training import super_resolution_data as sr_data

    grey = image_pairs.grey_from_photo(image_pairs.load_photo(photo, short_side=256))[..., 0]
    grey_path = os.path.join(directory, "photo_grey.png")
    Image.fromarray(grey).save(grey_path)
    low = np.asarray(sr_data.downscale(sr_data.hr_photo(sr_photo))).astype(np.uint8)
    low_path = os.path.join(directory, "photo_low_resolution.png")
    Image.fromarray(low).save(low_path)
    return grey_path, low_path


def link_base(directory, model_dirs):
    """A serving base in ``directory`` with a link per model directory (named as it is)."""
    base = os.path.join(directory, "base")
    os.makedirs(base)
    for model_dir in model_dirs:
        model_dir = os.path.abspath(model_dir)
        if not os.path.isdir(model_dir):
            raise SystemExit(f"error: {model_dir} is not a model directory (BASE/NAME with VERSION/ inside).")
        os.symlink(model_dir, os.path.join(base, os.path.basename(model_dir.rstrip("/"))))
    return base


def build_parser():
    parser = argparse.ArgumentParser(prog="python bench/web_screenshots.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR", help="BASE/NAME of a served model")
    parser.add_argument("--out", default="docs/images", help="where web_<kind>.png go")
    parser.add_argument("--photo", default="opencv/fruits.jpg",
                        help="image-to-image input (a training.image_pairs name; default held out)")
    parser.add_argument("--sr-photo", default="opencv/baboon.jpg",
                        help="super-resolution: its 4x downscale is the input (default held out)")
    parser.add_argument("--width", type=int, default=1100, help="browser window width")
    parser.add_argument("--seconds", type=float, default=300, help="longest wait for a result")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from export.serve import ModelServer

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="web_screenshots_") as scratch:
        base = link_base(scratch, args.model_dirs)
        args.photo, args.sr_photo = write_photos(scratch, args.photo, args.sr_photo)
        driver = page.chromium_driver(width=args.width, height=1600)
        try:
            with ModelServer(base, rest_port=0, grpc_port=0) as server:
                articles = page.open_page(driver, f"http://{server.rest_address}/", seconds=args.seconds)
                done = {}
                for name, article in articles.items():
                    for kind in kind_of(article):
                        if kind in DRIVERS and kind not in done:
                            started = time.perf_counter()
                            DRIVERS[kind](driver, article, args)
                            path = page.screenshot(article, os.path.join(args.out, KIND_FILES[kind]))
                            done[kind] = name
                            print(f"{kind}: {name} -> {path} ({time.perf_counter() - started:.1f} s)")
        finally:
            driver.quit()
    missing = sorted(set(DRIVERS) - set(done))
    if missing:
        print(f"no model of kind {', '.join(missing)} among the given directories; no screenshot for it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
