"""Contact sheets: one PNG per kind of group (copies, near copies, leaks, conflicts), a row per
group, each picture captioned with its class, split and file name, so a person can look."""

from __future__ import annotations

import os
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from simplecnn.data import shown
from simplecnn.files import PNG_METADATA, atomic_write

__all__ = ["contact_sheet"]

THUMB = 128
MAX_ROWS = 40
MAX_PER_ROW = 6


def _thumb(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMB, THUMB))
            picture = ImageOps.exif_transpose(image).convert("RGB")
            picture.thumbnail((THUMB, THUMB))
            return picture
    except Exception:  # a file that went away or broke since the scan: a grey square
        return Image.new("RGB", (THUMB, THUMB), (200, 200, 200))


def contact_sheet(groups: list[list[dict[str, Any]]], title: str, path: str) -> str | None:
    """Write the groups (lists of ``{"path", "class", "split"}``) as a PNG; None if none."""
    if not groups:
        return None
    rows = groups[:MAX_ROWS]
    font = ImageFont.load_default(size=11)
    cell_w, cell_h = THUMB + 12, THUMB + 40
    width = cell_w * min(MAX_PER_ROW, max(len(g) for g in rows)) + 8
    more = len(groups) - len(rows)
    sheet = Image.new("RGB", (max(width, 420), 30 + cell_h * len(rows) + (20 if more else 0)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), f"{title} ({len(groups)})", fill="black", font=ImageFont.load_default(size=15))
    for r, group in enumerate(rows):
        y = 30 + r * cell_h
        for c, member in enumerate(group[:MAX_PER_ROW]):
            x = 6 + c * cell_w
            thumb = _thumb(member["path"])
            sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y))
            name = shown(os.path.basename(member["path"]))
            draw.text((x, y + THUMB + 2), f"{member['class']} / {member['split']}", fill="black", font=font)
            draw.text((x, y + THUMB + 16), name if len(name) <= 20 else name[:19] + "…", fill="#444", font=font)
        if len(group) > MAX_PER_ROW:
            draw.text((6 + MAX_PER_ROW * cell_w - 40, y + THUMB // 2), f"+{len(group) - MAX_PER_ROW}", fill="black", font=font)
        draw.line([(0, y + cell_h - 4), (sheet.width, y + cell_h - 4)], fill="#dddddd")
    if more:
        draw.text((6, sheet.height - 18), f"... and {more} more groups (all in report.json)", fill="black", font=font)
    info = PngImagePlugin.PngInfo()
    for key, value in PNG_METADATA.items():
        info.add_text(key, value)
    with atomic_write(path, suffix=".png") as tmp:
        sheet.save(tmp, "PNG", pnginfo=info)
    return path
