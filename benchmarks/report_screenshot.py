"""Opt-in: a screenshot of a run's report.html in headless Chromium, for reviewers to look at.

    python benchmarks/report_screenshot.py --report_dir=/tmp/gdr-out \\
        --png=benchmarks/results/report_screenshot.png

Needs Debian's `chromium` (apt-get install chromium); the CI does not run this. Chromium runs
with a fresh profile in a temporary directory and everything that could reach the network
switched off, which also shows the page needs nothing from it. Prints a JSON line (and writes
it next to the PNG): the PNG's size, Chromium's version, how long the capture took, and what the
page showed (the report's headline numbers, read from report.json).
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from results_io import save_json  # noqa: E402  (sibling module)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--report_dir", required=True)
    p.add_argument("--png", default="benchmarks/results/report_screenshot.png")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=4200)
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args()
    page = os.path.abspath(os.path.join(args.report_dir, "report.html"))
    with open(os.path.join(args.report_dir, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    png = os.path.abspath(args.png)
    os.makedirs(os.path.dirname(png), exist_ok=True)
    version = subprocess.run([args.chromium, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as profile:
        began = time.time()
        proc = subprocess.run(
            [args.chromium, *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={args.width},{args.height}", f"--screenshot={png}",
             f"file://{page}"], capture_output=True, text=True, timeout=300)
        took = time.time() - began
    if proc.returncode != 0 or not os.path.exists(png):
        sys.exit(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    width, height = png_size(png)
    result = {"benchmark": "report_screenshot", "png": os.path.relpath(png),
              "png_bytes": os.path.getsize(png), "png_size": [width, height],
              "chromium": version, "capture_s": round(took, 2), "report": page,
              "headline": {"counts": report["counts"], "balanced": report["balanced"],
                           "verdict_shares": report.get("verdict_shares")}}
    print(json.dumps(result))
    save_json(result, os.path.splitext(png)[0] + ".json")


if __name__ == "__main__":
    main()
