// Verify an image upload and get its metadata (seed: "Verify image file upload and get metadata").
import { GoogleAIFileManager } from "@google/generative-ai/server";
import { baseUrl, mediaPath } from "./config.mjs";

const fileManager = new GoogleAIFileManager(process.env.API_KEY, { baseUrl });

const uploadResponse = await fileManager.uploadFile(
  `${mediaPath}/jetpack.jpg`,
  {
    mimeType: "image/jpeg",
    displayName: "Jetpack drawing",
  },
);

// Get the previously uploaded file's metadata.
const getResponse = await fileManager.getFile(uploadResponse.file.name);

// View the response.
console.log(
  `Retrieved file ${getResponse.displayName} as ${getResponse.uri}`,
);
