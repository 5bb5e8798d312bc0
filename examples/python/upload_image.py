"""Upload an image with the File API, then ask about it by its URI.

    python upload_image.py [IMAGE]      (default: the sample jetpack.jpg)
"""

from common import arg_or_sample, client

client = client()

sample_file = client.files.upload(file=arg_or_sample(1, "jetpack.jpg"),
                                  config={"display_name": "Jetpack drawing", "mime_type": "image/jpeg"})
print(f"Uploaded file '{sample_file.display_name}' as: {sample_file.uri}")

response = client.models.generate_content(model="gemini-1.5-flash",
                                          contents=[sample_file, "Tell me about this image."])
print(response.text)
