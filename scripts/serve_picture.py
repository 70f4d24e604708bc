"""Take ``docs/serve.png``: the web page after reconstructing a picture of two photo-like hands.

    python scripts/serve_picture.py [--checkpoint runs/demo/last.pt] [--out docs/serve.png]

Starts ``handssca serve`` on a free local port, opens it in headless Chromium (Debian's ``chromium`` and
``chromium-driver``), uploads two of the package's photo-like synthetic renders side by side (a right hand
and a mirrored one, i.e. a left hand; forearms, no occluders), presses Reconstruct in "detect hands" mode
and saves the screenshot: the meshes are the hand model fitted to the detector's landmarks.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def picture(path: Path, indices: tuple[int, int] = (1, 12)) -> Path:
    """Two photo-like test renders, the second mirrored (a left hand), side by side."""
    from handssca.data.synthetic import SyntheticHands

    ds = SyntheticHands("test", 16, 0, 256, max_occluders=0, max_tilt_deg=40.0)
    a, b = ((np.clip(ds.render_original(i)["image"], 0, 1) * 255).round().astype(np.uint8) for i in indices)
    Image.fromarray(np.concatenate([a, np.ascontiguousarray(b[:, ::-1])], axis=1)).save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "runs" / "demo" / "last.pt"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shot = picture(tmp / "two_hands.png")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "handssca.cli", "serve", "--checkpoint", args.checkpoint, "--port", str(port)]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(400):
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError:
                    time.sleep(0.3)
            opts = webdriver.ChromeOptions()
            opts.binary_location = "/usr/bin/chromium"
            for flag in (
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-unsafe-swiftshader",
                "--disable-dev-shm-usage",
                "--window-size=1400,1150",
                f"--user-data-dir={tmp / 'chrome'}",
            ):
                opts.add_argument(flag)
            browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
            try:
                wait = WebDriverWait(browser, 240)
                browser.get(url)
                upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
                upload.send_keys(str(shot))
                wait.until(lambda d: "press Reconstruct" in d.find_element(By.CSS_SELECTOR, "#status").text)
                browser.find_element(By.CSS_SELECTOR, "#run").click()
                try:
                    wait.until(lambda d: "found" in d.find_element(By.CSS_SELECTOR, "#status").text)
                finally:
                    browser.save_screenshot(str(args.out))
                time.sleep(3)  # the 3D view draws
                browser.save_screenshot(str(args.out))
                print(f"wrote {args.out}: {browser.find_element(By.CSS_SELECTOR, '#status').text}")
            finally:
                browser.quit()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
