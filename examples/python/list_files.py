"""List every uploaded file with its display name (the SDK pages through files.list)."""

from common import client

client = client()
for f in client.files.list():
    print(f"name: {f.name} | display name: {f.display_name}")
