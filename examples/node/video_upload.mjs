// Upload a video and poll until it is ACTIVE
// (seed: "Upload a video file using the File API" and "Verify file upload and check state").
import { GoogleAIFileManager, FileState } from "@google/generative-ai/server";
import { baseUrl, mediaPath, pollMs } from "./config.mjs";

// Initialize GoogleAIFileManager with your API_KEY.
const fileManager = new GoogleAIFileManager(process.env.API_KEY, { baseUrl });

// Upload the file and specify a display name.
const uploadResponse = await fileManager.uploadFile(`${mediaPath}/GreatRedSpot.mp4`, {
  mimeType: "video/mp4",
  displayName: "Jupiter's Great Red Spot",
});

// View the response.
console.log(`Uploaded file ${uploadResponse.file.displayName} as: ${uploadResponse.file.uri}`);

const name = uploadResponse.file.name;

// Poll getFile() on a set interval (10 seconds in the seed) to check file state.
let file = await fileManager.getFile(name);
while (file.state === FileState.PROCESSING) {
  process.stdout.write(".")
  // Sleep for 10 seconds
  await new Promise((resolve) => setTimeout(resolve, pollMs));
  // Fetch the file from the API again
  file = await fileManager.getFile(name)
}

if (file.state === FileState.FAILED) {
  throw new Error("Video processing failed.");
}

// When file.state is ACTIVE, the file is ready to be used for inference.
console.log(`File ${file.displayName} is ready for inference as ${file.uri}`);
