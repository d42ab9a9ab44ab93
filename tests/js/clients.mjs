// The official JavaScript SDKs against a running polyroute: chat (plain, streamed, tools) with
// `openai`, messages (plain, streamed) with `@anthropic-ai/sdk`. Prints one JSON result line.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [root, model] = process.argv.slice(2);
const oai = new OpenAI({ baseURL: `${root}/v1`, apiKey: "unused", maxRetries: 0 });
const ant = new Anthropic({ baseURL: root, apiKey: "unused", maxRetries: 0 });
const user = [{ role: "user", content: "Say hello." }];
const out = {};

const chat = await oai.chat.completions.create({ model, messages: user });
out.chat = chat.choices[0].message.content;
out.chatUsage = chat.usage.completion_tokens;

let streamed = "";
for await (const chunk of await oai.chat.completions.create({ model, messages: user, stream: true })) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
out.chatStream = streamed;

const tools = [{ type: "function", function: { name: "get_weather", parameters: {
  type: "object", properties: { location: { type: "string" } }, required: ["location"] } } }];
const withTool = await oai.chat.completions.create({ model, messages: user, tools, tool_choice: "required" });
out.tool = withTool.choices[0].message.tool_calls[0].function.name;

const msg = await ant.messages.create({ model, max_tokens: 100, messages: user });
out.messages = msg.content.filter((b) => b.type === "text").map((b) => b.text).join("");
out.messagesStop = msg.stop_reason;

const stream = ant.messages.stream({ model, max_tokens: 100, messages: user });
const final = await stream.finalMessage();
out.messagesStream = final.content.filter((b) => b.type === "text").map((b) => b.text).join("");

try {
  await oai.chat.completions.create({ model: "no-such-model", messages: user });
  out.notFound = "no error";
} catch (err) {
  out.notFound = `${err.status} ${err.code ?? ""}`.trim();
}
console.log(JSON.stringify(out));
