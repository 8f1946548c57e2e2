"""Regenerate docs/label_pairwise.png and docs/label_ranking.png.

Seeds a throwaway SQLite database with a demo project of each kind, starts
``alignstack label serve`` on a free localhost port, and photographs both labeling pages with
headless Chromium (Debian's /usr/bin/chromium + /usr/bin/chromedriver; override with
$ALIGNSTACK_CHROMIUM / $ALIGNSTACK_CHROMEDRIVER).

    python docs/make_label_screenshots.py [--out-dir docs]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAIRWISE = [{
    "prompt": [{"role": "system", "content": "You are a helpful assistant."},
               {"role": "user", "content": "My tomato plants have yellow leaves at the bottom. What should I do?"}],
    "completions": [
        "Yellowing lower leaves on tomatoes are most often early blight or a nitrogen shortage.\n\n"
        "1. Remove the affected leaves and throw them away (not in the compost).\n"
        "2. Water at the base in the morning so the foliage stays dry.\n"
        "3. Mulch to stop soil splashing onto the leaves.\n"
        "4. If new growth is pale too, feed with a balanced fertilizer.",
        "Tomatoes turn yellow sometimes. Just water them more and it should be fine.",
    ],
    "meta": {"source": "demo"},
}]
RANKING = [{
    "prompt": "Explain in one or two sentences why the sky is blue.",
    "completions": [
        "Sunlight is scattered by air molecules, and shorter (blue) wavelengths scatter much more than "
        "longer ones (Rayleigh scattering), so blue light reaches our eyes from every direction.",
        "Because it reflects the ocean.",
        "Air scatters blue light more than red light, so the sky looks blue.",
        "The sky is blue because of the way light works in the atmosphere.",
    ],
}]
INSTRUCTIONS = ("Read the prompt, then judge which response is more helpful, honest and harmless.\n"
                "Mark a response unsafe if following it could cause harm.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(REPO / "docs"))
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from alignstack.label.cli import main as label

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = f"sqlite:///{tmp / 'demo.db'}"
        for name, kind, rows in (("helpfulness-v1", "pairwise", PAIRWISE), ("physics-rank", "ranking", RANKING)):
            f = tmp / f"{name}.jsonl"
            f.write_text("".join(json.dumps(r) + "\n" for r in rows))
            assert label(["import", "--db", db, "--project", name, "--kind", kind, "--labels-per-task", "3",
                          "--instructions", INSTRUCTIONS, str(f)]) == 0
        assert label(["user", "add", "alice", "--db", db, "--password", "demo",
                      "--projects", "helpfulness-v1,physics-rank"]) == 0
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        server = subprocess.Popen([sys.executable, "-m", "alignstack.label.cli", "serve", "--db", db,
                                   "--port", str(port)], cwd=tmp, env=env)
        base = f"http://127.0.0.1:{port}"
        opts = webdriver.ChromeOptions()
        opts.binary_location = os.environ.get("ALIGNSTACK_CHROMIUM", "/usr/bin/chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,1160",
                  "--hide-scrollbars"):
            opts.add_argument(a)
        service = Service(executable_path=os.environ.get("ALIGNSTACK_CHROMEDRIVER", "/usr/bin/chromedriver"))
        driver = None
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/login", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            driver = webdriver.Chrome(service=service, options=opts)
            driver.get(base + "/login")
            driver.find_element(By.ID, "username").send_keys("alice")
            driver.find_element(By.ID, "password").send_keys("demo")
            driver.find_element(By.ID, "login").click()
            time.sleep(0.3)

            driver.get(base + "/projects/helpfulness-v1")
            ActionChains(driver).send_keys("1").send_keys("s").perform()  # a choice and a strength, unsent
            driver.save_screenshot(str(out / "label_pairwise.png"))

            driver.get(base + "/projects/physics-rank")
            driver.execute_script("document.getElementById('instructions').open = false;")
            ActionChains(driver).send_keys("j").send_keys("j").send_keys("1").perform()  # 3rd response to 1st place
            driver.save_screenshot(str(out / "label_ranking.png"))
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(10)
    print(f"wrote {out / 'label_pairwise.png'} and {out / 'label_ranking.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
