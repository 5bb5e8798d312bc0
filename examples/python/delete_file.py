"""Upload an image, then delete it with files.delete (files expire after 48 hours anyway).

    python delete_file.py [IMAGE]
"""

from google.genai import errors

from common import arg_or_sample, client

client = client()

upload_result = client.files.upload(file=arg_or_sample(1, "jetpack.jpg"),
                                    config={"display_name": "Jetpack drawing", "mime_type": "image/jpeg"})

client.files.delete(name=upload_result.name)
print(f"Deleted {upload_result.display_name}")

try:
    client.files.get(name=upload_result.name)
except errors.ClientError as e:  # a deleted file is gone: Gemini answers 403 PERMISSION_DENIED
    print(f"files.get after delete: {e.code} {e.status}")
else:
    raise SystemExit("the file is still there after delete")
