// The seed's "uploadResponse = ..." for the video prompts: upload, then wait until ACTIVE.
import { GoogleAIFileManager, FileState } from "@google/generative-ai/server";
import { baseUrl, mediaPath, pollMs } from "./config.mjs";

export async function uploadVideo() {
  const fileManager = new GoogleAIFileManager(process.env.API_KEY, { baseUrl });
  const uploadResponse = await fileManager.uploadFile(`${mediaPath}/GreatRedSpot.mp4`, {
    mimeType: "video/mp4",
    displayName: "Jupiter's Great Red Spot",
  });
  let file = await fileManager.getFile(uploadResponse.file.name);
  while (file.state === FileState.PROCESSING) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    file = await fileManager.getFile(uploadResponse.file.name);
  }
  if (file.state === FileState.FAILED) throw new Error("Video processing failed.");
  return uploadResponse;
}
