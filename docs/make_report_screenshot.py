"""Render a run's HTML report in headless Chromium and save a screenshot for the docs.

    python docs/make_report_screenshot.py runs/demo/report.html docs/report.png
"""
import os
import sys
from pathlib import Path


def main(report: str, out: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("ALIGNSTACK_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2400"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(os.environ.get("ALIGNSTACK_CHROMEDRIVER", "/usr/bin/chromedriver")),
                              options=opts)
    try:
        driver.get(Path(report).resolve().as_uri())
        driver.save_screenshot(out)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(*sys.argv[1:3])
