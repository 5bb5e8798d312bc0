"""Ask for a bounding box, then convert Gemini's [ymin, xmin, ymax, xmax] (0-1000) to pixels.

    python bounding_box.py [IMAGE] [--draw OUT.png]    (default: the sample piranha.jpg)

The model answers in a 1000x1000 frame: divide by 1000, multiply x by the width and y by the height.
"""

import argparse
import json
from pathlib import Path

from google.genai import types
from PIL import Image, ImageDraw

from common import client, media_path

parser = argparse.ArgumentParser(description="Bounding box for the piranha, in pixels.")
parser.add_argument("image", nargs="?", type=Path, help="default: the sample piranha.jpg")
parser.add_argument("--draw", metavar="OUT.png", help="save the image with the boxes drawn")
args = parser.parse_args()
image_path = args.image or media_path() / "piranha.jpg"
draw_to = args.draw


def find_boxes(text: str) -> list[tuple[list[int], str]]:
    """Every [ymin, xmin, ymax, xmax] in the answer: `box_2d` objects or bare lists, in any JSON in the text."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "[{":
            try:
                value, end = decoder.raw_decode(text, i)
                _collect(value, "", found)
                i = end
                continue
            except json.JSONDecodeError:
                pass
        i += 1
    return found


def _collect(value, label, found):
    if isinstance(value, list) and len(value) == 4 and all(isinstance(n, (int, float)) for n in value):
        found.append(([int(n) for n in value], label))
    elif isinstance(value, list):
        for item in value:
            _collect(item, label, found)
    elif isinstance(value, dict) and "box_2d" in value:
        _collect(value["box_2d"], str(value.get("label", label)), found)


def to_pixels(box: list[int], width: int, height: int) -> tuple[int, int, int, int]:
    ymin, xmin, ymax, xmax = box
    return (round(xmin / 1000 * width), round(ymin / 1000 * height),
            round(xmax / 1000 * width), round(ymax / 1000 * height))


client = client()
image = Image.open(image_path)
prompt = "Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]"
response = client.models.generate_content(
    model="gemini-1.5-pro",
    contents=[prompt, types.Part.from_bytes(data=image_path.read_bytes(), mime_type=Image.MIME[image.format])])
print(response.text)

boxes = find_boxes(response.text)
if not boxes:
    raise SystemExit("no bounding box in the answer")
for box, label in boxes:
    x0, y0, x1, y1 = to_pixels(box, image.width, image.height)
    print(f"{label or 'box'}: {box} -> pixels x {x0}..{x1}, y {y0}..{y1} of {image.width}x{image.height}")

if draw_to:
    canvas = image.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    for box, label in boxes:
        x0, y0, x1, y1 = to_pixels(box, image.width, image.height)
        pen.rectangle((x0, y0, x1, y1), outline="red", width=3)
        pen.text((x0 + 3, y0 + 3), label, fill="red")
    canvas.save(draw_to)
    print(f"drew the boxes on {draw_to}")
