#!/usr/bin/env python3
"""Contact sheet of the bundled snowflake set: data/contact_sheet.png.

A 6 x 4 grid of 128 px thumbnails, filled in this order: every rare crystal,
every near duplicate next to its original, every exact duplicate, then common
crystals in file order. Positions are listed on stdout (and in
data/snowflakes/README.md). Needs Pillow:

    python data/make_contact_sheet.py [data/snowflakes] [data/contact_sheet.png]
"""
import json
import sys
from pathlib import Path

from PIL import Image

COLS, ROWS, THUMB, GAP = 6, 4, 128, 4


def pick(images):
    chosen = [e for e in images if e["rare"]]
    for e in images:
        if e["near_duplicate_of"]:
            chosen += [x for x in images if x["file"] == e["near_duplicate_of"]] + [e]
    chosen += [e for e in images if e["duplicate_of"]]
    seen = {e["file"] for e in chosen}
    chosen += [e for e in images if e["file"] not in seen]
    return chosen[: COLS * ROWS]


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "data/snowflakes")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else folder.parent / "contact_sheet.png")
    images = json.loads((folder / "manifest.json").read_text())["images"]
    size = (COLS * THUMB + (COLS + 1) * GAP, ROWS * THUMB + (ROWS + 1) * GAP)
    sheet = Image.new("RGB", size, (0, 0, 0))
    for k, e in enumerate(pick(images)):
        row, col = divmod(k, COLS)
        thumb = Image.open(folder / e["file"]).convert("RGB").resize((THUMB, THUMB), Image.LANCZOS)
        sheet.paste(thumb, (GAP + col * (THUMB + GAP), GAP + row * (THUMB + GAP)))
        note = e["duplicate_of"] and f"copy of {e['duplicate_of']}" or e["near_duplicate_of"] and f"near duplicate of {e['near_duplicate_of']}" or ""
        print(f"row {row + 1} col {col + 1}: {e['file']} {e['morphology']}{' (rare)' if e['rare'] else ''} {note}".rstrip())
    sheet.save(out, optimize=True)


if __name__ == "__main__":
    main()
