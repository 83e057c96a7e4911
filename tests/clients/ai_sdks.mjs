// The Vercel AI SDK and LangChain, unchanged, against a node's OpenAI-compatible API: each asks a
// greedy answer whole and streamed, and prints what it got as one JSON object for the test
// (test_openai_sdk.cpp) to hold against the node's own HTTP answers.
// Usage: node ai_sdks.mjs BASE_URL API_KEY
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { ChatOpenAI } from "@langchain/openai";

const [base, apiKey] = process.argv.slice(2);
const prompt = "Hi there";
const out = {};

// The Vercel AI SDK: its default model speaks /v1/responses; .chat() speaks /v1/chat/completions.
const provider = createOpenAI({ baseURL: `${base}/v1`, apiKey });
const responses = await generateText({ model: provider("any-model"), prompt, temperature: 0, maxOutputTokens: 40 });
out.vercel_responses = responses.text;
out.vercel_responses_usage = responses.usage.outputTokens;
let streamed = "";
for await (const part of streamText({ model: provider("any-model"), prompt, temperature: 0, maxOutputTokens: 40 }).textStream) {
  streamed += part;
}
out.vercel_responses_stream = streamed;
const chat = await generateText({ model: provider.chat("any-model"), prompt, temperature: 0, maxOutputTokens: 40 });
out.vercel_chat = chat.text;
streamed = "";
for await (const part of streamText({ model: provider.chat("any-model"), prompt, temperature: 0, maxOutputTokens: 40 }).textStream) {
  streamed += part;
}
out.vercel_chat_stream = streamed;

// LangChain's ChatOpenAI (chat completions).
const model = new ChatOpenAI({ model: "any-model", apiKey, temperature: 0, maxTokens: 40, configuration: { baseURL: `${base}/v1` } });
const message = await model.invoke(prompt);
out.langchain = message.content;
out.langchain_usage = message.usage_metadata?.output_tokens ?? null;
streamed = "";
for await (const chunk of await model.stream(prompt)) streamed += chunk.content;
out.langchain_stream = streamed;

console.log(JSON.stringify(out));
