// Get a bounding box for an object, then convert it to pixels (seed: "Get a bounding box for an object").
import { GoogleGenerativeAI } from "@google/generative-ai";
import fs from "fs";
import { baseUrl, mediaPath } from "./config.mjs";

const genAI = new GoogleGenerativeAI(process.env.API_KEY);

function fileToGenerativePart(path, mimeType) {
  return { inlineData: { data: Buffer.from(fs.readFileSync(path)).toString("base64"), mimeType } };
}

// filePart2 has the piranha.
const filePart2 = fileToGenerativePart(`${mediaPath}/piranha.jpg`, "image/jpeg");

async function findBox(filePart) {
  // Choose a Gemini model.
  const model = genAI.getGenerativeModel({ model: "gemini-1.5-pro" }, { baseUrl });

  const prompt = "Return a bounding box for the piranha. \n [ymin, xmin, ymax, xmax]";

  const generatedContent = await model.generateContent([prompt, filePart]);

  const text = generatedContent.response.text();
  console.log(text);
  return text;
}

const text = await findBox(filePart2);

// To convert to the original image: divide by 1000, multiply x by the width and y by the height.
// The sample piranha.jpg is 640x480 (pass WIDTH/HEIGHT for another image).
const [width, height] = [Number(process.env.WIDTH ?? 640), Number(process.env.HEIGHT ?? 480)];
const box = text.match(/\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]/);
if (!box) throw new Error("no [ymin, xmin, ymax, xmax] in the answer");
const [ymin, xmin, ymax, xmax] = box.slice(1).map(Number);
console.log(`pixels: x ${Math.round(xmin / 1000 * width)}..${Math.round(xmax / 1000 * width)}, ` +
            `y ${Math.round(ymin / 1000 * height)}..${Math.round(ymax / 1000 * height)}`);
