"""A dependency-free line-chart PNG writer (zlib + struct only).

The GPU check's image has torch and transformers but no matplotlib; the check must still leave
its efficiency plot. `panels_png` draws a row of log-log line charts with axes, tick labels, titles and
a legend in a built-in 3x5 pixel font (upper case). With matplotlib installed the check uses it instead.
"""
from __future__ import annotations

import math
import struct
import zlib

# 3x5 glyphs, rows top to bottom, "#" = ink
_FONT = {
    "0": "###|#.#|#.#|#.#|###", "1": ".#.|##.|.#.|.#.|###", "2": "###|..#|###|#..|###", "3": "###|..#|.##|..#|###",
    "4": "#.#|#.#|###|..#|..#", "5": "###|#..|###|..#|###", "6": "###|#..|###|#.#|###", "7": "###|..#|..#|.#.|.#.",
    "8": "###|#.#|###|#.#|###", "9": "###|#.#|###|..#|###", "A": ".#.|#.#|###|#.#|#.#", "B": "##.|#.#|##.|#.#|##.",
    "C": ".##|#..|#..|#..|.##", "D": "##.|#.#|#.#|#.#|##.", "E": "###|#..|##.|#..|###", "F": "###|#..|##.|#..|#..",
    "G": ".##|#..|#.#|#.#|.##", "H": "#.#|#.#|###|#.#|#.#", "I": "###|.#.|.#.|.#.|###", "J": "..#|..#|..#|#.#|.#.",
    "K": "#.#|#.#|##.|#.#|#.#", "L": "#..|#..|#..|#..|###", "M": "#.#|###|###|#.#|#.#", "N": "##.|#.#|#.#|#.#|#.#",
    "O": ".#.|#.#|#.#|#.#|.#.", "P": "##.|#.#|##.|#..|#..", "Q": ".#.|#.#|#.#|##.|.##", "R": "##.|#.#|##.|#.#|#.#",
    "S": ".##|#..|.#.|..#|##.", "T": "###|.#.|.#.|.#.|.#.", "U": "#.#|#.#|#.#|#.#|###", "V": "#.#|#.#|#.#|#.#|.#.",
    "W": "#.#|#.#|###|###|#.#", "X": "#.#|#.#|.#.|#.#|#.#", "Y": "#.#|#.#|.#.|.#.|.#.", "Z": "###|..#|.#.|#..|###",
    ".": "...|...|...|...|.#.", "-": "...|...|###|...|...", "/": "..#|..#|.#.|#..|#..", ":": "...|.#.|...|.#.|...",
    "%": "#.#|..#|.#.|#..|#.#", "(": ".#.|#..|#..|#..|.#.", ")": ".#.|..#|..#|..#|.#.", ",": "...|...|...|.#.|#..",
    "=": "...|###|...|###|...", "+": "...|.#.|###|.#.|...", " ": "...|...|...|...|...", "_": "...|...|...|...|###",
}
COLOURS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


class Canvas:
    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x: int, y: int, c) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c) -> None:
        for y in range(max(0, y0), min(self.h, y1 + 1)):
            for x in range(max(0, x0), min(self.w, x1 + 1)):
                self.dot(x, y, c)

    def line(self, x0, y0, x1, y1, c, width: int = 2, dash: int = 0) -> None:
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            if dash and (i // dash) % 2:
                continue
            x, y = round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)
            self.rect(x - width // 2, y - width // 2, x + (width - 1) // 2, y + (width - 1) // 2, c)

    def text(self, x: int, y: int, s: str, c=(0, 0, 0), scale: int = 2) -> int:
        for ch in s.upper():
            rows = _FONT.get(ch, _FONT[" "]).split("|")
            for r, row in enumerate(rows):
                for k, v in enumerate(row):
                    if v == "#":
                        self.rect(x + k * scale, y + r * scale, x + (k + 1) * scale - 1, y + (r + 1) * scale - 1, c)
            x += 4 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w: 3 * (y + 1) * self.w]) for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _fmt(v: float, tokens: bool = False) -> str:
    if tokens and v >= 1024:
        return f"{v / 1024:.3g}K"
    return f"{v:.3g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between lo and hi (at most ~6)."""
    out, e = [], math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                out.append(v)
        e += 1
    while len(out) > 6:
        out = out[::2]
    return out or [lo, hi]


def panels_png(panels: list[dict], title: str, path, panel_w: int = 420, panel_h: int = 330) -> None:
    """panels: [{"title", "xlabel", "ylabel", "xticks" (optional), "series": [{"label", "x": [...], "y": [...], "dash": bool}],
    "hlines": [{"label", "y"}]}]; x and y on log scales (base 2 for x); None points are skipped."""
    W, H = panel_w * len(panels), panel_h + 40
    cv = Canvas(W, H)
    cv.text(10, 8, title[: W // 8], scale=2)
    for p_i, p in enumerate(panels):
        ox = p_i * panel_w
        left, right, top, bottom = ox + 70, ox + panel_w - 15, 70, 40 + panel_h - 45
        pts = [(x, y) for s in p["series"] for x, y in zip(s["x"], s["y"]) if x and y]
        ys = [y for _, y in pts] + [h["y"] for h in p.get("hlines", [])]
        xs = [x for x, _ in pts]
        room = (panel_w - 80) // 4  # characters at scale 1; scale 2 when the title fits at that size
        cv.text(ox + 70, 36, p["title"][:room], scale=2 if len(p["title"]) * 8 <= panel_w - 80 else 1)
        if not pts:
            cv.text(left + 10, (top + bottom) // 2, "NO DATA")
            continue
        x0, x1 = min(xs) / 1.2, max(xs) * 1.2
        y0, y1 = min(ys) / 1.5, max(ys) * 1.5
        fx = lambda x: left + (math.log2(x) - math.log2(x0)) / (math.log2(x1) - math.log2(x0)) * (right - left)  # noqa: E731
        fy = lambda y: bottom - (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0)) * (bottom - top)  # noqa: E731
        cv.line(left, bottom, right, bottom, (0, 0, 0), 1)
        cv.line(left, top, left, bottom, (0, 0, 0), 1)
        for v in sorted(v for v in set(p.get("xticks") or xs) if x0 <= v <= x1):
            X = round(fx(v))
            cv.line(X, bottom, X, bottom + 4, (0, 0, 0), 1)
            cv.text(X - 8, bottom + 8, _fmt(v, tokens=True), scale=1)
        for v in _log_ticks(y0, y1):
            Y = round(fy(v))
            cv.line(left - 4, Y, left, Y, (0, 0, 0), 1)
            cv.line(left + 1, Y, right, Y, (225, 225, 225), 1)
            cv.text(ox + 8, Y - 5, _fmt(v), scale=2)
        cv.text(left + 60, bottom + 20, p.get("xlabel", ""), scale=1)
        cv.text(ox + 8, top - 14, p.get("ylabel", ""), scale=1)
        for h in p.get("hlines", []):
            Y = round(fy(h["y"]))
            cv.line(left, Y, right, Y, (120, 120, 120), 1, dash=6)
            cv.text(left + 6, Y - 9, h["label"], (120, 120, 120), scale=1)
        for k, s in enumerate(p["series"]):
            c = COLOURS[k % len(COLOURS)]
            seg = [(round(fx(x)), round(fy(y))) for x, y in zip(s["x"], s["y"]) if x and y]
            for (a, b), (cx, cy) in zip(seg, seg[1:]):
                cv.line(a, b, cx, cy, c, 2, dash=5 if s.get("dash") else 0)
            for a, b in seg:
                cv.rect(a - 3, b - 3, a + 3, b + 3, c)
            ly = top + 6 + 14 * k
            cv.rect(right - 150, ly, right - 138, ly + 6, c)
            cv.text(right - 132, ly, s["label"][:16], c, scale=1)
    with open(path, "wb") as fh:
        fh.write(cv.png())
