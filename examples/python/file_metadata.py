"""Upload an image, then verify the upload and read its metadata with files.get.

    python file_metadata.py [IMAGE]
"""

from common import arg_or_sample, client

client = client()

upload_response = client.files.upload(file=arg_or_sample(1, "jetpack.jpg"),
                                      config={"display_name": "Jetpack drawing", "mime_type": "image/jpeg"})

# Get the previously uploaded file's metadata.
file = client.files.get(name=upload_response.name)
print(f"Retrieved file '{file.display_name}' as: {file.uri}")
print(f"  mime type {file.mime_type}, {file.size_bytes} bytes, state {file.state.name}, expires {file.expiration_time}")
