"""The page at `/` in a real browser (headless Chromium from Debian's
packages, driven by Selenium): upload a photo, read its class and the
version that answered, as the REST API gives them."""

from __future__ import annotations

import os
import shutil

import pytest

from flowers import features

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "needs headless Chromium: install Debian's chromium and chromium-driver packages "
            "(apt-get install -y chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_classifies_an_uploaded_photo(served, pushed, photos_dir, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, version = pushed
    folder = os.path.join(photos_dir, features.CLASS_NAMES[0])
    photo = os.path.join(folder, sorted(os.listdir(folder))[0])
    want = served.predict([open(photo, "rb").read()])[1]["predictions"][0]

    browser.get(served.url + "/")
    WebDriverWait(browser, 30).until(lambda b: "serving version" in b.find_element(By.ID, "status").text)
    assert browser.find_element(By.ID, "status").text == f"serving version {version}"
    browser.find_element(By.ID, "files").send_keys(photo)
    name = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.CSS_SELECTOR, ".photo .class-name"))
    assert name.text == want[features.CLASS_NAME_OUTPUT]
    assert browser.find_element(By.CSS_SELECTOR, ".photo .version").text == version
    bars = browser.find_elements(By.CSS_SELECTOR, ".photo .bar")
    assert [b.find_element(By.CSS_SELECTOR, ".name").text for b in bars] == list(features.CLASS_NAMES)
    shown = [float(b.find_element(By.CSS_SELECTOR, ".value").text.rstrip("%")) for b in bars]
    assert shown == pytest.approx([p * 100 for p in want[features.PROBABILITIES_OUTPUT]], abs=0.051)
