"""The live page in headless Chromium with a fake webcam (the astronaut): seconds from
opening the page to the first labelled box, and the round trip and frame rate it shows.

    .venv/bin/python bench/live_page.py [--opens 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import report
from media import CHROMIUM, astronaut, astronaut_frames, start_server, write_y4m
from playwright.sync_api import sync_playwright


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--opens", type=int, default=5)
    args = p.parse_args()
    proc, port = start_server()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            clip = write_y4m(Path(tmp) / "cam.y4m", astronaut_frames(astronaut(), 30))
            flags = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream"]
            flags += [
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ]
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
            for i in range(args.opens + 1):  # the first open warms the browser's camera path
                page = browser.new_page()
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector(".face-scores", timeout=15_000)
                first_box = time.perf_counter() - start
                page.wait_for_timeout(3000)  # let the page measure a few seconds of frames
                if i:
                    rows.append({
                        "open": i, "first_box_s": first_box,
                        "round_trip_ms": float(page.locator("#rtt").inner_text()),
                        "fps": float(page.locator("#fps").inner_text()),
                    })  # fmt: skip
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    report("live_page", ["open", "first_box_s", "round_trip_ms", "fps"], rows)


if __name__ == "__main__":
    main()
