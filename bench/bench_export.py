#!/usr/bin/env python
"""The HTML reader view in headless Chromium: page weight, time to first paint, DOM size, and a screenshot.

    .venv/bin/python bench/bench_export.py SITE_DIR/index.html [--screenshot docs/reader-view.png] [--runs 3]

Opens the page from file:// with Debian's Chromium (/usr/bin/chromium), as a reader would; reports the
figures of each run as JSON. A screenshot is quantised to 128 colours to keep the PNG small for docs/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMIUM_ARGS, chromium_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    site = args.page.parent
    weight = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for run in range(args.runs):
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            started = time.perf_counter()
            page.goto(args.page.resolve().as_uri(), wait_until="load", timeout=120_000)
            load = time.perf_counter() - started
            paint = page.evaluate("""() => new Promise(resolve => {
                const seen = () => Object.fromEntries(performance.getEntriesByType('paint')
                                                      .map(e => [e.name, Math.round(e.startTime)]));
                const wait = t => (seen()['first-contentful-paint'] || t > 200) ? resolve(seen())
                                  : requestAnimationFrame(() => wait(t + 1));
                wait(0); })""")
            nav = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return {dom_content_loaded_ms: Math.round(n.domContentLoadedEventEnd),"
                " load_ms: Math.round(n.loadEventEnd)}; }"
            )
            started = time.perf_counter()
            page.evaluate(
                "() => new Promise(r => { let y = 0; const h = document.body.scrollHeight;"
                " function step() { y += h / 20; window.scrollTo(0, y);"
                " if (y < h) requestAnimationFrame(step); else r(); } step(); })"
            )
            scroll = time.perf_counter() - started
            print(
                json.dumps(
                    {
                        "run": run + 1,
                        "page_bytes": args.page.stat().st_size,
                        "site_bytes": weight,
                        "elements": page.evaluate("() => document.getElementsByTagName('*').length"),
                        "marks": page.evaluate("() => document.querySelectorAll('mark').length"),
                        "first_paint_ms": paint.get("first-paint"),
                        "first_contentful_paint_ms": paint.get("first-contentful-paint"),
                        **nav,
                        "goto_seconds": round(load, 3),
                        "scroll_top_to_bottom_20_frames_seconds": round(scroll, 3),
                    }
                )
            )
            if args.screenshot and run == 0:
                page.evaluate("() => window.scrollTo(0, 0)")
                page.screenshot(path=str(args.screenshot))
                from PIL import Image

                image = Image.open(args.screenshot).convert("RGB").quantize(128)
                image.save(args.screenshot, optimize=True)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
