// Renders templates with @huggingface/jinja, for tests/data/prompt_format_test.cpp: r1kit's
// Jinja versions of its built-in chat templates must render the same bytes here as in
// r1kit (both its interpreter and its built-in renderers).
//
//   node jinja_render_reference.mjs NODE_MODULES IN.jsonl OUT.jsonl
//
// Each input line is {"template": source, "vars": {...}}; each output line, in order, is
// {"text": rendering} or {"error": message} when the template raised.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [nodeModules, inPath, outPath] = process.argv.slice(2);
if (!nodeModules || !inPath || !outPath) {
  console.error("usage: node jinja_render_reference.mjs NODE_MODULES IN.jsonl OUT.jsonl");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "r1kit.cjs"));
const { Template } = require("@huggingface/jinja");

const out = [];
for (const line of fs.readFileSync(inPath, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const { template, vars } = JSON.parse(line);
  try {
    out.push(JSON.stringify({ text: new Template(template).render(vars) }));
  } catch (e) {
    out.push(JSON.stringify({ error: String(e.message || e) }));
  }
}
fs.writeFileSync(outPath, out.join("\n") + "\n");
