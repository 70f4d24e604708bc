"""``handssca serve`` in a real browser: the command runs as a subprocess on a free local port, headless
Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium uploads a picture, presses
the button and checks the overlay, the 3D view and the JSON; a screenshot is left in the test's folder.
Every connection the server opens and every request the page makes must stay on this machine."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytest.importorskip("gradio", reason="gradio is not installed (pip install 'handssca[serve]')")
pytest.importorskip("selenium", reason="selenium is not installed (the dev extra)")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        "chromium / chromedriver are not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Run in the server process before the command: every socket connection and name look-up that leaves
#: the loopback is written to stderr (and so to the test's log), where the test looks for it.
GUARD = """
import ipaddress, sys
def _outside(host):
    try:
        return not ipaddress.ip_address(str(host).split('%')[0]).is_loopback
    except ValueError:
        return str(host) not in ('localhost', '')
def _hook(event, args):
    if event == 'socket.connect' and isinstance(args[1], tuple) and _outside(args[1][0]):
        print('OUTSIDE CONNECTION', args[1], file=sys.stderr, flush=True)
    elif event == 'socket.getaddrinfo' and args[0] is not None and _outside(args[0]):
        print('OUTSIDE LOOKUP', args[0], file=sys.stderr, flush=True)
sys.addaudithook(_hook)
from handssca.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(checkpoint, tmp_path):
    """``handssca serve`` on a free port; yields its URL; stopped with SIGTERM afterwards."""
    port = free_port()
    tmp = tmp_path / "server_tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),  # where the server's own folder is made (uploads, outputs)
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    log = open(tmp_path / "server.log", "w+")
    cmd = [sys.executable, "-c", GUARD, "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"handssca serve exited with {proc.returncode}: {(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"handssca serve did not answer in 120 s: {(tmp_path / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert code == 0, text
    assert "OUTSIDE" not in text, text
    left = [p for p in tmp.rglob("*") if p.is_file() or p.name.startswith("handssca-serve-")]
    assert not left, f"the server's files outlived it: {left}"


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",  # WebGL for the 3D view on the CPU (trusted local content)
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
        "--window-size=1400,1000",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def two_hands_picture(path: Path) -> Path:
    """A right hand and, mirrored beside it, a left hand (the detector tests' rendered hand)."""
    from tests.detect.hand_images import render_right_hand

    right, _ = render_right_hand(size=256)
    left, _ = render_right_hand(size=256, roll_deg=-30.0)
    Image.fromarray(np.concatenate([right, np.ascontiguousarray(left[:, ::-1])], axis=1)).save(path)
    return path


def colours_drawn(canvas) -> tuple[int, int]:
    """(blue, orange) pixels in a screenshot of the 3D view: right and left hands, lit (not black)."""
    rgb = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"), dtype=int)
    r, b = rgb[..., 0], rgb[..., 2]
    return int(((b > r + 30) & (b > 90)).sum()), int(((r > b + 60) & (r > 120)).sum())


def test_page_reconstructs_an_uploaded_picture(server, browser, tmp_path):
    picture = two_hands_picture(tmp_path / "two_hands.png")
    wait = WebDriverWait(browser, 120)
    browser.get(server)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
    # a file that is no picture: the package's one line, as predict says it
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.png").write_text("a text file, not a picture\n")
    upload.send_keys(str(tmp_path / "notes" / "x.png"))
    line = "x.png: not a readable image (UnidentifiedImageError: cannot identify image file 'x.png')"
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#status").text == line)  # said as soon as it is dropped
    browser.find_element(By.CSS_SELECTOR, "#run").click()  # and again, as an error, when it is sent
    wait.until(
        lambda d: any(
            line in t.text.splitlines() for t in d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body']")
        )
    )
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "serve_error.png"))
    for close in browser.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body'] .toast-close"):
        close.click()
    for close in browser.find_elements(By.CSS_SELECTOR, "#input-image button[aria-label='Clear']"):
        close.click()
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
    upload.send_keys(str(picture))
    # the upload as the package reads it, shown before it is reconstructed
    wait.until(lambda d: "512 x 256 pixels; press Reconstruct" in d.find_element(By.CSS_SELECTOR, "#status").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay img"))

    def run(expected_status: str):
        old = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#files a")}
        browser.find_element(By.CSS_SELECTOR, "#run").click()
        wait.until(lambda d: expected_status in d.find_element(By.CSS_SELECTOR, "#status").text)
        hrefs = wait.until(
            lambda d: (
                (h := {a.get_attribute("href") or "" for a in d.find_elements(By.CSS_SELECTOR, "#files a")}) != old
                and h
            )
        )
        return {Path(h.split("file=")[-1]).name: h for h in hrefs if "file=" in h}

    def fetch_json(url: str) -> dict:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    # 1. detect hands (the default): both hands found, numbered left to right, each with its side
    links = run("2 hands found (right, left)")
    assert {"hand1_right.json", "hand2_left.json", "hand1_right.obj", "hand2_left.ply", "overlay.png"} <= set(links)
    assert len(fetch_json(links["hand2_left.json"])["joints_3d_m"]) == 21
    canvas = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#mesh canvas"))[0]
    wait.until(lambda _: min(colours_drawn(canvas)) > 300)  # a blue right hand and an orange left one
    overlay = browser.find_element(By.CSS_SELECTOR, "#overlay img")
    size = wait.until(
        lambda d: d.execute_script(
            "const i = arguments[0]; return i.complete && [i.naturalWidth, i.naturalHeight]", overlay
        )
    )
    assert size == list(Image.open(picture).size)
    browser.save_screenshot(str(tmp_path / "serve_detect.png"))

    # 2. the whole image as one hand, right
    next(lab for lab in browser.find_elements(By.CSS_SELECTOR, "#mode label") if "whole image" in lab.text).click()
    links = run("whole image as one right hand")
    assert {"hand1_right.obj", "hand1_right.ply", "hand1_right.json", "overlay.png", "hands_view.glb"} <= set(links)
    info = fetch_json(links["hand1_right.json"])
    assert len(info["joints_3d_m"]) == 21 and len(info["joints_2d_px"]) == 21
    assert "joints_3d_m" in browser.find_element(By.CSS_SELECTOR, "#info").text
    wait.until(lambda _: colours_drawn(canvas)[0] > 300 and colours_drawn(canvas)[1] < 50)
    browser.save_screenshot(str(tmp_path / "serve.png"))

    # 3. a short video: tracked, its overlay shown as an animation, every frame's hands to download
    from tests.test_serve import hand_gif

    clip = hand_gif(tmp_path / "clip.gif", frames=3)
    browser.find_element(By.CSS_SELECTOR, "#input-video input[type=file]").send_keys(str(clip))
    browser.find_element(By.CSS_SELECTOR, "#run-video").click()
    wait.until(
        lambda d: "hands found in 3 of 3 frames (1 tracked)" in d.find_element(By.CSS_SELECTOR, "#status-video").text
    )
    links = wait.until(
        lambda d: (
            {
                Path(h.split("file=")[-1]).name: h
                for a in d.find_elements(By.CSS_SELECTOR, "#files-video a")
                if "file=" in (h := a.get_attribute("href") or "")
            }
            or None
        )
    )
    assert {"overlay.gif", "hands_per_frame.json", "hands_view.glb"} <= set(links)
    frames = fetch_json(links["hands_per_frame.json"])["frames"]
    assert [len(f["hands"]) for f in frames] == [1, 1, 1] and len(frames[2]["hands"][0]["joints_3d_m"]) == 21
    shown = browser.find_element(By.CSS_SELECTOR, "#overlay-video img")
    assert (
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", shown))
        == 192
    )
    browser.save_screenshot(str(tmp_path / "serve_video.png"))

    # nothing the page asked for came from anywhere but the server
    host = server.split("://", 1)[1].rstrip("/")
    requested = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            requested.add(message["params"].get("request", message["params"]).get("url", ""))
    outside = [u for u in requested if u.startswith(("http", "ws")) and u.split("://", 1)[1].split("/")[0] != host]
    assert not outside, outside
