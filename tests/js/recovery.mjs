// Mid-stream recovery through the official npm SDKs: a stream broken after its first tokens is
// finished by the backup. Prints one JSON result line.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [root, spliced, continued] = process.argv.slice(2);
const oai = new OpenAI({ baseURL: `${root}/v1`, apiKey: "unused", maxRetries: 0 });
const ant = new Anthropic({ baseURL: root, apiKey: "unused", maxRetries: 0 });
const user = [{ role: "user", content: "Say hello." }];
const out = {};

for (const [name, model] of [["splice", spliced], ["continuation", continued]]) {
  let text = "";
  const finishes = [];
  let usage = null;
  const stream = await oai.chat.completions.create({
    model, messages: user, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.choices[0]?.finish_reason) finishes.push(chunk.choices[0].finish_reason);
    if (chunk.usage) usage = chunk.usage;
  }
  out[name] = { text, finishes, completionTokens: usage?.completion_tokens ?? null };
}

const final = await ant.messages.stream({ model: continued, max_tokens: 200, messages: user })
  .finalMessage();
out.messages = final.content.filter((b) => b.type === "text").map((b) => b.text).join("");
out.messagesStop = final.stop_reason;
console.log(JSON.stringify(out));
