"""Send locally stored images inline (no File API), the seed's fileToGenerativePart.

    python inline_images.py [IMAGE...]   (default: the three sample images)
"""

import sys
from pathlib import Path

from google.genai import types

from common import client, media_path


def file_to_part(path: Path, mime_type: str) -> types.Part:
    """Local file -> an inline-data Part (bytes travel base64-encoded in the request)."""
    return types.Part.from_bytes(data=path.read_bytes(), mime_type=mime_type)


paths = [Path(p) for p in sys.argv[1:]] or [media_path() / n for n in ("jetpack.jpg", "piranha.jpg", "firefighter.jpg")]
parts = [file_to_part(p, "image/jpeg") for p in paths]

client = client()
for path, part in zip(paths, parts):
    response = client.models.generate_content(model="gemini-1.5-flash", contents=[part, "Describe this image."])
    print(f"{path.name}: {response.text}\n")
