// The OpenAI Node SDK, unchanged, against a troupe node: node openai_sdk.mjs BASE_URL prints one
// JSON object with what each call answered (tests/processes/test_openai_sdk.cpp compares them
// with the node's own answers). The model name is a hosted one, as a client written for OpenAI's
// service would send.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2] + "/v1", apiKey: "k-0123456789", maxRetries: 0 });
const model = "gpt-4o-mini";
const input = "Hi there";
const out = {};

const response = await client.responses.create({ model, input, temperature: 0, max_output_tokens: 40 });
out.responses = response.output_text;
out.responses_status = response.status;

out.responses_stream = "";
const events = await client.responses.create({ model, input, temperature: 0, max_output_tokens: 40, stream: true });
for await (const e of events) {
  if (e.type === "response.output_text.delta") out.responses_stream += e.delta;
  if (e.type === "response.completed" || e.type === "response.incomplete") out.responses_stream_status = e.response.status;
}

const messages = [{ role: "user", content: input }];
const chat = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 40 });
out.chat = chat.choices[0].message.content;
out.chat_usage = chat.usage;

out.chat_stream = "";
const chunks = await client.chat.completions.create({
  model, messages, temperature: 0, max_tokens: 40, stream: true, stream_options: { include_usage: true },
});
for await (const c of chunks) {
  if (c.choices.length > 0) out.chat_stream += c.choices[0].delta.content ?? "";
  if (c.usage) out.chat_stream_usage = c.usage;
}

const completion = await client.completions.create({ model, prompt: "Once upon a time", temperature: 0, max_tokens: 30 });
out.completion = completion.choices[0].text;

console.log(JSON.stringify(out));
