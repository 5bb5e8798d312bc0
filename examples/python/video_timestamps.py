"""Ask about moments of the video with MM:SS timestamps (video first, then the text: Gemini's advice for one video).

    python video_timestamps.py [VIDEO]      (default: the sample GreatRedSpot.mp4)
"""

from common import arg_or_sample, client, upload_video

client = client()
video_file = upload_video(client, arg_or_sample(1, "GreatRedSpot.mp4"), "Jupiter's Great Red Spot")

response = client.models.generate_content(
    model="gemini-1.5-pro",
    contents=[video_file, "What are the examples given at 01:05 and 01:19 supposed to show us?"],
)
print(response.text)
