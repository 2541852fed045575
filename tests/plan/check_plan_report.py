#!/usr/bin/env python3
"""check_plan_report.py FTDIST OUT_DIR [--png PATH] -- plan ARGS...

`ftdist plan ARGS --report` against `ftdist plan ARGS --json`, then rendered by headless Chromium:
  1. the page is well-formed HTML (every element closed in order) and self-contained (no script, no
     external URL), and each inline SVG parses as XML;
  2. the memory bars are the JSON's bytes to scale: each bar is a JSON candidate (GPUs, GPU, stage,
     micro-batch, checkpointing), each rect's data-bytes is that candidate's
     timeline_peak.by_category entry, every rect's height is its bytes times one common scale (to
     0.01 px), and each capacity line sits at the candidate's gpu_memory_bytes on that scale;
  3. a Chromium screenshot of the page (1000 px wide) is not blank, and its headline shows the
     recommended GPU count: its top rows equal, pixel for pixel, those of a page that holds only the
     headline "<gpus> x <gpu>" taken from the JSON (same style sheet), and differ from one with
     one GPU more (the comparison can tell);
  4. at 390 px wide (a phone) the page renders too (not blank, the headline inked).
Exit 77 (a visible skip) when no Chromium is installed (`bash scripts/setup.sh --tests` installs it).
--png keeps the 1000 px screenshot (the README's picture, docs/plan-report.png)."""
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source", "track"}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class Nesting(html.parser.HTMLParser):
    """Every non-void element closed, in order; SVG children may self-close."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            fail(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        self.stack.pop()


def check_html(page):
    p = Nesting()
    p.feed(page)
    p.close()
    if p.stack:
        fail(f"unclosed elements: {p.stack}")
    if not page.lstrip().lower().startswith("<!doctype html>"):
        fail("no <!doctype html>")
    names = [t for t, _ in p.tags]
    if "script" in names:
        fail("the page has a script")
    for tag, attrs in p.tags:
        for k in ("src", "href"):
            if re.match(r"(https?:)?//", attrs.get(k, "")):
                fail(f"<{tag} {k}={attrs[k]}> fetches from elsewhere")
    if re.search(r"url\(\s*['\"]?(https?:)?//", page) or "@import" in page:
        fail("the style sheet fetches from elsewhere")
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    if len(svgs) < 2:
        fail(f"expected the memory bars and the step chart, found {len(svgs)} SVG(s)")
    return [ET.fromstring(s.replace("&times;", "\u00d7")) for s in svgs]


def check_bars(svg, plan):
    bars = [g for g in svg.iter("g") if g.get("class") == "bar"]
    if not bars:
        fail("no bars in the memory chart")
    rec = plan["recommendation"]
    key = lambda c: (int(c["gpus"]), c["gpu"], c["shard"], int(c["micro_batch"]), str(c["checkpointing"]))
    by_key = {}
    for c in plan["candidates"]:
        if "timeline_peak" in c:
            by_key.setdefault(key(c), c)
    scale = None
    seen_rec = False
    for g in bars:
        k = (int(g.get("data-gpus")), g.get("data-gpu"), g.get("data-shard"), int(g.get("data-micro-batch")), g.get("data-checkpointing"))
        if k not in by_key:
            fail(f"bar {k} is no candidate of the JSON")
        cand = by_key[k]
        seen_rec |= rec is not None and k == key(rec)
        cats = cand["timeline_peak"]["by_category"]
        rects = [r for r in g.iter("rect")]
        if sorted(r.get("data-category") for r in rects) != sorted(cats):
            fail(f"bar {k}: categories {[r.get('data-category') for r in rects]} vs the JSON's {list(cats)}")
        total_h = 0.0
        for r in rects:
            b, h = int(r.get("data-bytes")), float(r.get("height"))
            if b != cats[r.get("data-category")]:
                fail(f"bar {k} {r.get('data-category')}: {b} bytes drawn, the JSON says {cats[r.get('data-category')]}")
            if b > 0 and scale is None:
                scale = h / b
            if scale is not None and abs(h - b * scale) > 0.01:
                fail(f"bar {k} {r.get('data-category')}: height {h} px for {b} bytes, not {b * scale:.4f} (the scale of the others)")
            total_h += h
        if abs(total_h - cand["timeline_peak"]["bytes"] * scale) > 0.05:
            fail(f"bar {k}: {total_h} px high for {cand['timeline_peak']['bytes']} bytes")
        # the stack: each rect on the one below; the capacity line at the GPU's bytes
        base = max(float(r.get("y")) + float(r.get("height")) for r in rects)
        caps = [ln for ln in g.iter("line") if ln.get("class") == "capacity"]
        if len(caps) != 1 or abs(base - float(caps[0].get("y1")) - cand["gpu_memory_bytes"] * scale) > 0.02:
            fail(f"bar {k}: the capacity line is not at {cand['gpu_memory_bytes']} bytes")
    if rec is not None and not seen_rec:
        fail("the recommendation has no bar")
    print(f"bars: {len(bars)}, every rect its JSON bytes x {scale:.3e} px/byte")


def png_rgb(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                fail(f"{path}: PNG depth {depth} color {color} interlace {interlace} is not read here")
            bpp = 3 if color == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[j] for j in range(stride) if bpp == 3 or j % 4 != 3))
        prev = line
    return w, h, rows


def screenshot(chromium, html_path, png, width, height, profile):
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
           "--user-data-dir=" + profile, f"--window-size={width},{height}", "--screenshot=" + png, "file://" + html_path]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
    if r.returncode != 0 or not os.path.exists(png):
        fail(f"chromium exited {r.returncode}: {r.stdout.decode(errors='replace')[-800:]}")
    return png_rgb(png)


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    ftdist, out = args[0], args[1]
    png_keep = args[args.index("--png") + 1] if "--png" in args[:sep] else None
    plan_args = args[sep + 1:]  # "plan", then its options
    if plan_args[:1] != ["plan"]:
        fail("expected '-- plan ARGS...'")
    os.makedirs(out, exist_ok=True)
    report = os.path.abspath(os.path.join(out, "plan.html"))
    r = subprocess.run([ftdist, *plan_args, "--report", report], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0 or "wrote " + report not in r.stdout.decode():
        fail(f"ftdist plan --report exited {r.returncode}: {r.stdout.decode()[-600:]}")
    plan = json.loads(subprocess.run([ftdist, *plan_args, "--json"], stdout=subprocess.PIPE, check=True).stdout)
    page = open(report, encoding="utf-8").read()
    svgs = check_html(page)
    check_bars(svgs[0], plan)
    if not any(c.get("class") == "peak" for c in svgs[1].iter("circle")):
        fail("the step chart marks no peak")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIPPED: no chromium (bash scripts/setup.sh --tests installs it); the HTML and SVG checks passed")
        sys.exit(77)
    rec = plan["recommendation"]
    if rec is None:
        fail("the scenario recommends nothing: the headline check needs a recommendation")
    profile = tempfile.mkdtemp(prefix="ftdist-chromium-")
    try:
        w, h, shot = screenshot(chromium, report, os.path.join(out, "plan.png"), 1000, 1500, profile)
        pixels = [row[i:i + 3] for row in shot[::8] for i in range(0, len(row), 24)]
        ink = sum(1 for p in pixels if p != b"\xff\xff\xff") / len(pixels)
        colors = len(set(pixels))
        if ink < 0.05 or colors < 20:
            fail(f"the screenshot looks blank: {ink:.1%} non-white, {colors} colours")
        style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)

        def headline_rows(gpus, name):
            ref = os.path.join(out, f"headline-{gpus}.html")
            with open(ref, "w", encoding="utf-8") as f:
                f.write(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><style>{style}</style></head><body>'
                        f'<header class="headline"><h1 class="count">{gpus} &times; {name}</h1></header></body></html>\n')
            return screenshot(chromium, ref, ref[:-5] + ".png", 1000, 1500, profile)[2][:64]

        want = headline_rows(rec["gpus"], rec["gpu"])
        if shot[:64] != want:
            diff = sum(a != b for ra, rb in zip(shot[:64], want) for a, b in zip(ra, rb))
            fail(f"the headline does not show {rec['gpus']} x {rec['gpu']}: {diff} bytes of its top 64 rows differ")
        if headline_rows(rec["gpus"] + 1, rec["gpu"]) == want:
            fail("a headline with one GPU more renders the same: the comparison cannot tell")
        _, _, phone = screenshot(chromium, report, os.path.join(out, "plan-phone.png"), 390, 900, profile)
        phone_ink = sum(1 for row in phone[:64] for i in range(0, len(row), 3) if row[i:i + 3] != b"\xff\xff\xff")
        if phone_ink < 200:
            fail(f"the phone-width headline is blank ({phone_ink} inked pixels in its top 64 rows)")
        print(f"screenshot {w}x{h}: {ink:.0%} ink, {colors} colours; headline = '{rec['gpus']} x {rec['gpu']}' pixel for pixel")
        if png_keep:
            shutil.copyfile(os.path.join(out, "plan.png"), png_keep)
            print("kept " + png_keep)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print("OK")


if __name__ == "__main__":
    main()
