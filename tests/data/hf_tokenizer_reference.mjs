// The reference side of the tokenizer.json exactness test: encodes a corpus
// (hf_tokenizer_corpus.mjs's format) with @huggingface/tokenizers under Node.
//
//   node tests/data/hf_tokenizer_reference.mjs NODE_MODULES TOKENIZER_DIR CORPUS OUT
//
// TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json. OUT gets one line per
// corpus line: {"ids": [...], "ids_special": [...], "decoded": "..."} where ids encode
// without special tokens, ids_special with them (the post-processor's template), and
// decoded is decode(ids) keeping special tokens and without clean-up. {"hex"} lines are
// decoded as UTF-8 with U+FFFD replacement (WHATWG) first.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, tokDir, corpus, out] = process.argv.slice(2);
const lib = path.join(nodeModules, "@huggingface", "tokenizers", "dist", "tokenizers.mjs");
const { Tokenizer } = await import(pathToFileURL(lib).href);
const read = (f) => JSON.parse(fs.readFileSync(path.join(tokDir, f), "utf8"));
const tok = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
const utf8 = new TextDecoder("utf-8", { fatal: false });

const lines = [];
for (const line of fs.readFileSync(corpus, "utf8").split("\n")) {
  if (line === "") continue;
  const rec = JSON.parse(line);
  const text = rec.hex !== undefined ? utf8.decode(Buffer.from(rec.hex, "hex")) : rec.text;
  const ids = tok.encode(text, { add_special_tokens: false }).ids;
  const ids_special = tok.encode(text, { add_special_tokens: true }).ids;
  const decoded = ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  lines.push(JSON.stringify({ ids, ids_special, decoded }));
}
fs.writeFileSync(out, lines.join("\n") + "\n");
