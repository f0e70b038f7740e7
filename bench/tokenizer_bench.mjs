// The Node side of bench/tokenizer_bench.cpp: encodes a corpus (tests/data/
// hf_tokenizer_corpus.mjs's format) with @huggingface/tokenizers on one thread and prints
// {"load_s": ..., "mb_per_s": ..., "ids": N} (a warm-up pass first, then a timed pass).
//
//   node bench/tokenizer_bench.mjs NODE_MODULES TOKENIZER_DIR CORPUS
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, tokDir, corpus] = process.argv.slice(2);
const lib = path.join(nodeModules, "@huggingface", "tokenizers", "dist", "tokenizers.mjs");
const { Tokenizer } = await import(pathToFileURL(lib).href);
const texts = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l !== "").map((l) => {
  const rec = JSON.parse(l);
  return rec.hex !== undefined ? new TextDecoder().decode(Buffer.from(rec.hex, "hex")) : rec.text;
});
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
let t0 = process.hrtime.bigint();
const read = (f) => JSON.parse(fs.readFileSync(path.join(tokDir, f), "utf8"));
const tok = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
const load_s = Number(process.hrtime.bigint() - t0) / 1e9;
let ids = 0;
for (const t of texts) ids += tok.encode(t, { add_special_tokens: false }).ids.length;  // warm-up
t0 = process.hrtime.bigint();
ids = 0;
for (const t of texts) ids += tok.encode(t, { add_special_tokens: false }).ids.length;
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ load_s, mb_per_s: bytes / 1e6 / s, ids }));
