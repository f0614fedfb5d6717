"""Headless Chromium driven by Selenium, for the page's tests and screenshots.

Uses Debian's ``chromium`` and ``chromium-driver`` (``bin/setup --test`` installs them) and the
flags a machine without internet needs: no background connections, no first-run, no sandbox
when running as root.
"""

from __future__ import annotations

import shutil

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage")


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
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, seconds).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    return {article.get_attribute("data-model"): article
            for article in driver.find_elements(By.CSS_SELECTOR, "article.model")}
