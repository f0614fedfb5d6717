"""Headless Chromium driven by Selenium, for the page's tests and screenshots.

Uses Debian's ``chromium`` and ``chromium-driver`` (``bin/setup --test`` installs them) and the
flags a machine without internet needs: no background connections, no first-run, no sandbox
when running as root. The helpers below drive the page as a person would (fill a field, pick a
file, click a button, drag on the mask canvas); ``tests/test_web.py`` and
``bench/web_screenshots.py`` both use them.
"""

from __future__ import annotations

import shutil

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars")


def chromium_paths():
    """``(chromium, chromedriver)`` paths, or None for each that is not installed."""
    return shutil.which("chromium"), shutil.which("chromedriver")


def chromium_driver(width=1100, height=1400):
    """A headless Chromium WebDriver; RuntimeError naming the fix if it is not installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = chromium_paths()
    if not (chromium and chromedriver):
        raise RuntimeError("chromium and chromium-driver are not installed: run bin/setup --test "
                           "(apt-get install chromium chromium-driver).")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + (f"--window-size={width},{height}",):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def open_page(driver, url, seconds=60):
    """Load the page at ``url`` and wait until it has listed the models; returns
    ``{model name: its <article> element}``."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"),
             seconds)
    return {article.get_attribute("data-model"): article
            for article in driver.find_elements(By.CSS_SELECTOR, "article.model")}


def wait_for(driver, condition, seconds=60):
    """``condition()``'s first truthy value, polled until ``seconds`` pass (TimeoutException).
    The page replaces its result elements when an answer arrives, so a condition that read one
    just before it was replaced is polled again rather than failing."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda _: condition())


def panel(article, title):
    """The ``<section class="panel">`` of a model's ``<article>`` whose heading starts with
    ``title`` (e.g. "Sample from seeds", "Upscale", "Inpaint")."""
    from selenium.webdriver.common.by import By

    for section in article.find_elements(By.CSS_SELECTOR, "section.panel"):
        if section.find_element(By.TAG_NAME, "h3").text.startswith(title):
            return section
    raise LookupError(f"{article.get_attribute('data-model')} has no panel titled {title!r}")


def button(element, text):
    """The button labelled ``text`` inside ``element``."""
    from selenium.webdriver.common.by import By

    return element.find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def fill(element, label, value):
    """Type ``value`` into the field labelled ``label`` (e.g. "first seed", "steps", "caption")."""
    from selenium.webdriver.common.by import By

    field = element.find_element(
        By.XPATH, f".//label[normalize-space(text())='{label}']/*[self::input or self::textarea]")
    field.clear()
    field.send_keys(str(value))
    return field


def choose_file(element, path):
    """Pick the file at ``path`` in ``element``'s file input."""
    from selenium.webdriver.common.by import By

    element.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))


def result_images(element, selector=".result img"):
    """``(naturalWidth, naturalHeight)`` of the decoded images matching ``selector`` in
    ``element`` (by default every result image of a model's panels), in page order."""
    from selenium.webdriver.common.by import By

    sizes = [(int(img.get_attribute("naturalWidth") or 0), int(img.get_attribute("naturalHeight") or 0))
             for img in element.find_elements(By.CSS_SELECTOR, selector)]
    return [size for size in sizes if size[0] > 0]


def wait_for_images(driver, element, count, seconds=60, selector=".result img"):
    """The sizes of ``element``'s result images once exactly ``count`` have decoded."""
    return wait_for(driver, lambda: len(sizes := result_images(element, selector)) == count and sizes,
                    seconds)


def slide(driver, slider, value):
    """Set the range input ``slider`` to ``value`` and fire its ``input`` event, as a drag does."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", slider, str(value))


def draw_stroke(driver, canvas, start, end, steps=6):
    """Drag with the mouse button held across ``canvas`` from ``start`` to ``end``, each an
    ``(x, y)`` fraction of its displayed size (0..1)."""
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = canvas.size["width"], canvas.size["height"]

    def offset(fraction_x, fraction_y):  # from the element's centre, as Selenium 4 counts
        return int((fraction_x - 0.5) * width), int((fraction_y - 0.5) * height)

    chain = ActionChains(driver).move_to_element_with_offset(canvas, *offset(*start)).click_and_hold()
    for i in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        chain.move_to_element_with_offset(canvas, *offset(x, y))
    chain.release().perform()


def screenshot(element, path):
    """Save a PNG of ``element`` (scrolled into view) at ``path``."""
    element.parent.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    element.screenshot(str(path))
    return path
