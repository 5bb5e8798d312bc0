"""Upload a video with the File API and poll files.get until it leaves PROCESSING.

    python video_upload.py [VIDEO]      (default: the sample GreatRedSpot.mp4)

Only ACTIVE files can be used for inference. POLL_SECONDS sets the poll interval (default 10, as the seed).
"""

import time

from common import POLL_SECONDS, arg_or_sample, client

client = client()

# Upload the file and specify a display name.
video_file = client.files.upload(file=arg_or_sample(1, "GreatRedSpot.mp4"),
                                 config={"display_name": "Jupiter's Great Red Spot", "mime_type": "video/mp4"})
print(f"Uploaded file '{video_file.display_name}' as: {video_file.uri}")

# Poll files.get on a set interval to check the file's state.
while video_file.state.name == "PROCESSING":
    print(".", end="", flush=True)
    time.sleep(POLL_SECONDS)
    video_file = client.files.get(name=video_file.name)
print()

if video_file.state.name == "FAILED":
    raise ValueError("Video processing failed.")

# When the state is ACTIVE, the file is ready to be used for inference.
print(f"File {video_file.display_name} is ready for inference as {video_file.uri}")
if video_file.video_metadata:
    print(f"Video metadata: {video_file.video_metadata}")
