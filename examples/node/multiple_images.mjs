// Locally stored images, inline, several in one prompt
// (seed: "Call one or more locally stored image files" and "Prompt with multiple images").
import { GoogleGenerativeAI } from "@google/generative-ai";
import fs from "fs";
import { baseUrl, mediaPath } from "./config.mjs";

// Access your API key as an environment variable (see "Set up your API key" above)
const genAI = new GoogleGenerativeAI(process.env.API_KEY);

// Converts local file information to a GoogleGenerativeAI.Part object.
function fileToGenerativePart(path, mimeType) {
  return {
    inlineData: {
      data: Buffer.from(fs.readFileSync(path)).toString("base64"),
      mimeType
    },
  };
}

// Turn images to Part objects
const filePart1 = fileToGenerativePart(`${mediaPath}/jetpack.jpg`, "image/jpeg")
const filePart2 = fileToGenerativePart(`${mediaPath}/piranha.jpg`, "image/jpeg")
const filePart3 = fileToGenerativePart(`${mediaPath}/firefighter.jpg`, "image/jpeg")

async function run() {
  // Choose a Gemini model.
  const model = genAI.getGenerativeModel({ model: "gemini-1.5-pro" }, { baseUrl });

  const prompt = "Write an advertising jingle showing how the product in the first image could solve the problems shown in the second two images.";

  const imageParts = [
    filePart1,
    filePart2,
    filePart3,
  ];

  const generatedContent = await model.generateContent([prompt, ...imageParts]);

  console.log(generatedContent.response.text());
}

await run();
