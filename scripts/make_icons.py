"""The console's icons (static/realtime/icons/): a warning sign on the title bar's colour.

    .venv/bin/python scripts/make_icons.py

Written once and committed; run again only to change them. The SVG is the source; the PNGs
are drawn with Pillow to the same design for browsers that want bitmaps to install an app.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "static" / "realtime" / "icons"
BACKGROUND = "#264b5d"
SIGN = "#ffc107"
MARK = "#1f2328"

SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">
  <rect width="512" height="512" rx="96" fill="{BACKGROUND}"/>
  <path d="M256 86 L446 414 H66 Z" fill="{SIGN}" stroke="{SIGN}" stroke-width="36"
    stroke-linejoin="round"/>
  <rect x="232" y="190" width="48" height="130" rx="20" fill="{MARK}"/>
  <circle cx="256" cy="364" r="28" fill="{MARK}"/>
</svg>
"""


def draw(size: int, *, maskable: bool = False) -> Image.Image:
    scale = size / 512
    image = Image.new("RGB", (size, size), BACKGROUND)
    if not maskable:  # a maskable icon is cut to a shape by the system: no corners of its own
        image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        ImageDraw.Draw(image).rounded_rectangle(
            (0, 0, size - 1, size - 1), radius=96 * scale, fill=BACKGROUND
        )
    pen = ImageDraw.Draw(image)
    # A maskable icon keeps its sign inside the middle 80 % (the safe zone).
    shrink = 0.8 if maskable else 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return ((256 + (x - 256) * shrink) * scale, (256 + (y - 256) * shrink) * scale)

    pen.polygon([at(256, 70), at(462, 424), at(50, 424)], fill=SIGN)
    pen.rounded_rectangle((*at(232, 190), *at(280, 320)), radius=20 * scale * shrink, fill=MARK)
    cx, cy = at(256, 364)
    r = 28 * scale * shrink
    pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=MARK)
    return image


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    (ICONS / "icon.svg").write_text(SVG)
    for size in (192, 512):
        draw(size).save(ICONS / f"icon-{size}.png", optimize=True)
    draw(512, maskable=True).save(ICONS / "maskable-512.png", optimize=True)


if __name__ == "__main__":
    main()
