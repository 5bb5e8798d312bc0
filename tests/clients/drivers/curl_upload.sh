#!/usr/bin/env bash
# The Gemini docs' curl upload flow (file-api/sample.sh, Video_REST, Audio_REST): a resumable start whose
# JSON body uses single quotes, as the docs write it; upload+finalize; generateContent with the file uri.
# Usage: curl_upload.sh BASE_URL MEDIA_DIR OUT_DIR  (writes each response where the docs' script does)
BASE_URL="$1"
IMG_PATH="$2/boxes.png"
cd "$3" || exit 1
GOOGLE_API_KEY=test-key
DISPLAY_NAME=TEXT

if command -v file >/dev/null; then
  MIME_TYPE=$(file -b --mime-type "${IMG_PATH}")
else
  MIME_TYPE=image/png
fi
NUM_BYTES=$(wc -c < "${IMG_PATH}")

tmp_header_file=upload-header.tmp
# Initial resumable request defining metadata; the upload url is in the response headers.
curl "${BASE_URL}/upload/v1beta/files?key=${GOOGLE_API_KEY}" \
  -D "${tmp_header_file}" \
  -H "X-Goog-Upload-Protocol: resumable" \
  -H "X-Goog-Upload-Command: start" \
  -H "X-Goog-Upload-Header-Content-Length: ${NUM_BYTES}" \
  -H "X-Goog-Upload-Header-Content-Type: ${MIME_TYPE}" \
  -H "Content-Type: application/json" \
  -d "{'file': {'display_name': '${DISPLAY_NAME}'}}" 2> /dev/null > start.json

upload_url=$(grep -i "x-goog-upload-url: " "${tmp_header_file}" | cut -d" " -f2 | tr -d "\r")
echo "${upload_url}" > upload_url.txt

# Upload the bytes and finalize.
curl "${upload_url}" \
  -H "Content-Length: ${NUM_BYTES}" \
  -H "X-Goog-Upload-Offset: 0" \
  -H "X-Goog-Upload-Command: upload, finalize" \
  --data-binary "@${IMG_PATH}" 2> /dev/null > file_info.json

file_uri=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["file"]["uri"]))' file_info.json)

# Now generate content using that file.
curl "${BASE_URL}/v1beta/models/gemini-3.5-flash:generateContent?key=$GOOGLE_API_KEY" \
    -H 'Content-Type: application/json' \
    -X POST \
    -d '{
      "contents": [{
        "parts":[
          {"text": "Can you tell me about the instruments in this photo?"},
          {"file_data":
            {"mime_type": "'"${MIME_TYPE}"'", "file_uri": '$file_uri'}
        }]
      }]
     }' 2> /dev/null > response.json
