"""Prompt with one text and several images (inline), as in the seed's advertising jingle.

    python multiple_images.py [PRODUCT PROBLEM1 PROBLEM2]
"""

from google.genai import types

from common import arg_or_sample, client

image_parts = [
    types.Part.from_bytes(data=arg_or_sample(i, name).read_bytes(), mime_type="image/jpeg")
    for i, name in enumerate(("jetpack.jpg", "piranha.jpg", "firefighter.jpg"), start=1)
]

prompt = ("Write an advertising jingle showing how the product in the first image could solve the problems "
          "shown in the second two images.")

client = client()
response = client.models.generate_content(model="gemini-1.5-pro", contents=[prompt, *image_parts])
print(response.text)
