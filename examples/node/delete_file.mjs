// Delete files (seed: "Delete files").
import { GoogleAIFileManager } from "@google/generative-ai/server";
import { baseUrl, mediaPath } from "./config.mjs";

const fileManager = new GoogleAIFileManager(process.env.API_KEY, { baseUrl });

const uploadResult = await fileManager.uploadFile(
  `${mediaPath}/jetpack.jpg`,
  {
    mimeType: "image/jpeg",
    displayName: "Jetpack drawing",
  },
);

// Delete the file.
await fileManager.deleteFile(uploadResult.file.name);

console.log(`Deleted ${uploadResult.file.displayName}`);
