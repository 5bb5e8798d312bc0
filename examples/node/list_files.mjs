// List files (seed: "List files").
import { GoogleAIFileManager } from "@google/generative-ai/server";
import { baseUrl } from "./config.mjs";

const fileManager = new GoogleAIFileManager(process.env.API_KEY, { baseUrl });

const listFilesResponse = await fileManager.listFiles();

// View the response.
// An empty list comes back as {} (no "files" key), hence the ?? [].
for (const file of listFilesResponse.files ?? []) {
  console.log(`name: ${file.name} | display name: ${file.displayName}`);
}
