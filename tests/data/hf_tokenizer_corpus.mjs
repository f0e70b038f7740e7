// Deterministic corpus of hard texts for the tokenizer.json exactness test
// (tests/data/hf_tokenizer_reference_test.cpp) and the tokenizer benchmark.
//
//   node tests/data/hf_tokenizer_corpus.mjs OUT.jsonl [COUNT]
//
// Writes COUNT (default 6000) lines. A line is {"text": "..."} for valid text, or
// {"hex": "..."} for a byte string that is not valid UTF-8 (the test checks that r1kit
// encodes it as the reference encodes its U+FFFD-replaced form). The same COUNT always
// gives the same file (a fixed-seed generator, no clock, no locale).
import fs from "node:fs";
import { rng } from "./seeded_rng.mjs";

const rand = rng(20260312);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const scripts = {
  latin: ["café", "naïve", "façade", "Ærøskøbing", "Łódź", "Dvořák", "São Paulo", "Ångström",
          "straße", "İstanbul", "ĳssel", "œuvre", "Việt Nam", "tiếng Việt", "Ōsaka", "żółć",
          "Crème brûlée", "Šťastný", "Ðoàn", "ÉCOLE", "ﬁnance", "Ǆemal"],
  greek: ["Καλημέρα", "κόσμε", "ΑΒΓΔ", "ἀρχή", "λόγος", "Ωμέγα", "σοφία", "ΣΊΣΥΦΟΣ"],
  cyrillic: ["Привет", "мир", "Ёлка", "Україна", "Беларусь", "ђак", "щука", "ЖУРНАЛ"],
  arabic: ["مرحبا", "العالم", "السلام عليكم", "كِتَابٌ", "٣٤٥", "ﷺ", "فارسی", "اردو"],
  hebrew: ["שלום", "עולם", "בְּרֵאשִׁית", "ישראל"],
  devanagari: ["नमस्ते", "दुनिया", "क्षत्रिय", "हिन्दी", "संस्कृतम्", "१२३"],
  indic: ["বাংলা", "தமிழ்", "తెలుగు", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "සිංහල"],
  thai: ["สวัสดี", "ภาษาไทย", "ครับ", "กรุงเทพมหานคร", "ລາວ", "ភាសាខ្មែរ", "မြန်မာ"],
  cjk: ["你好", "世界", "中华人民共和国", "漢字", "龍", "日本語", "こんにちは", "カタカナ",
        "ｶﾀｶﾅ", "東京都", "〜", "「引用」", "你好，世界！", "𠀀𠀁", "㐀"],
  hangul: ["안녕하세요", "한국어", "세계", "ㄱㄴㄷ", "똠방각하"],
  other: ["Բարեւ", "გამარჯობა", "ሰላም", "ᠮᠣᠩᠭᠣᠯ", "ᏣᎳᎩ", "ᚠᚢᚦ", "ꦧꦱꦗꦮ", "བོད་ཡིག"],
};
const emoji = ["😀", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵🇺🇸", "❤️", "1️⃣",
               "🧑🏿‍🚀", "🫠", "✋🏻", "🤷‍♀️", "☕", "🐍", "👁‍🗨", "🏴‍☠️"];
const combining = ["e\u0301", "a\u0308", "o\u0302\u0323", "n\u0303", "Z\u0351\u0360\u0361\u035b",
                   "\u0301", "i\u0307", "A\u030A", "\u1100\u1161\u11A8", "ç\u0327"];
const spaces = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\u00a0",
                "\u3000", "\u2009", " \n", "\n ", "    ", "\u2028", "\v", "\f", " \t \n"];
const numbers = ["0", "7", "42", "123", "1234", "12345", "3.14159", "1,234,567", "2026-03-12",
                 "1e-9", "0x1F", "٣٤٥", "१२३", "１２３", "²³", "½", "Ⅻ", "9999999999999999",
                 "-17", "+1 (555) 010-9999", "100%", "$5.00", "€3,50"];
const latex = ["$x^2 + y^2 = z^2$", "\\frac{a}{b}", "\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}",
               "\\begin{align} a &= b \\\\ c &= d \\end{align}", "$\\alpha\\beta\\gamma$",
               "\\boxed{42}", "\\sqrt{2}", "\\int_0^1 f(x)\\,dx", "e^{i\\pi} + 1 = 0"];
const code = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
              "{\"key\": [1, 2, {\"a\": null}]}", "SELECT * FROM t WHERE id = 3;",
              "#include <vector>\nint main() { return 0; }", "x => x ** 2", "a_b_c = __init__",
              "    if (x) {\n        y();\n    }", "<div class=\"a\">&amp;</div>", "$ ls -la ~/",
              "std::vector<int> v{1,2,3};", "// comment\n/* block */", "fn main() -> i32 { 0 }"];
const tags = ["<think>", "</think>", "<answer>", "</answer>", "<think>\n", "\n</think>\n\n"];
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>",
                  "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                  "<|fim_prefix|>", "<tool_call>", "</tool_call>", "<|im_start|>user\n",
                  "<|reserved_special_token_5|>", "<|im_start", "im_end|>", "<｜tool▁sep｜>"];
const english = ["Hello", "world", "The quick brown fox", "jumps over the lazy dog", "I'm", "you're",
                 "we've", "they'll", "he'd", "it's", "DON'T", "WE'VE", "O'Neil", "rock'n'roll",
                 "isn't", "Let's", "What's 2+2?", "e.g.", "U.S.A.", "hello-world", "...", "?!",
                 "—", "–", "\"quoted\"", "'single'", "’curly’", "«guillemets»", "(parens)",
                 "[brackets]", "{braces}", "a/b\\c", "@user", "#tag", "http://example.com/a?b=c"];

const all = [].concat(...Object.values(scripts), emoji, combining, numbers, latex, code, tags,
                      specials, english);
const ranges = [[0x20, 0x7e], [0xa1, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff],
                [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe5b], [0x3040, 0x30ff],
                [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x2000, 0x206f], [0x2190, 0x22ff],
                [0xff01, 0xff5e], [0x1f300, 0x1f5ff]];

function randomChars(n) {
  let s = "";
  for (let i = 0; i < n; ++i) {
    const [lo, hi] = pick(ranges);
    s += String.fromCodePoint(int(lo, hi));
  }
  return s;
}

function fragment() {
  const r = rand();
  if (r < 0.25) return pick(english);
  if (r < 0.45) return pick(pick(Object.values(scripts)));
  if (r < 0.52) return pick(emoji);
  if (r < 0.57) return pick(combining);
  if (r < 0.66) return pick(numbers);
  if (r < 0.70) return pick(latex);
  if (r < 0.75) return pick(code);
  if (r < 0.79) return pick(tags);
  if (r < 0.84) return pick(specials);
  if (r < 0.90) return randomChars(int(1, 8));
  return pick(spaces);
}

function mixed() {
  const n = int(1, 12);
  let s = rand() < 0.2 ? pick(spaces) : "";
  for (let i = 0; i < n; ++i) {
    s += fragment();
    s += rand() < 0.6 ? " " : rand() < 0.5 ? "" : pick(spaces);
  }
  return rand() < 0.3 ? s.trimEnd() : s;
}

// A valid text with ill-formed UTF-8 put in, as hex.
const badBytes = [[0x80], [0xbf], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98],
                  [0xf5], [0xff], [0xfe, 0xff], [0xc3], [0xe0, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80],
                  [0xf0, 0x80, 0x80, 0x80], [0xc2, 0x41], [0xe6, 0x97, 0x41]];
function invalid() {
  const parts = [];
  const n = int(1, 4);
  for (let i = 0; i < n; ++i) {
    parts.push(...Buffer.from(fragment(), "utf8"));
    parts.push(...pick(badBytes));
  }
  if (rand() < 0.5) parts.push(...Buffer.from(fragment(), "utf8"));
  return Buffer.from(parts).toString("hex");
}

function fixed() {
  const out = [""];
  for (const xs of [all, spaces]) for (const x of xs) out.push(x);
  for (const x of Object.values(scripts).flat()) out.push(" " + x, x + " " + x, x + "\n");
  for (const s of spaces) for (const w of ["a", "你好", "1", "!"]) out.push(w + s + w, s + w, w + s);
  for (const t of specials) out.push("x" + t + "y", " " + t + " ", t + t, "a " + t + "\nb");
  for (const d of ["1", "12", "123", "1234", "12345678901234567890"]) out.push(d, "a" + d, d + "a", " " + d);
  for (const c of ["'s", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'x"]) out.push("it" + c, c, " " + c);
  // Where JS RegExp and Oniguruma could disagree: \s (U+0085 NEL, U+FEFF, U+180E), case
  // folding in (?i:'s|'t...) (long s U+017F, Kelvin sign U+212A, dotted I U+0130), \p{N}
  // beyond decimal digits, \p{L} modifier letters.
  for (const x of ["a\u0085b", "a \u0085 b", "x  \u0085\u0085 y", "a\ufeffb", "a \ufeff b", "x\u180ey",
                   "it'\u017f", "IT'\u017f", "it'\u212a", "'\u0130", "a\u200bb", "1\u00b2\u00b3",
                   "\u2160\u2161", "\u00aa\u00ba", "\u02b0", "don\u2019t"]) out.push(x);
  return out;
}

const count = Number(process.argv[3] ?? 6000);
const lines = [];
for (const t of fixed()) lines.push(JSON.stringify({ text: t }));
while (lines.length < count) {
  lines.push(rand() < 0.03 ? JSON.stringify({ hex: invalid() }) : JSON.stringify({ text: mixed() }));
}
fs.writeFileSync(process.argv[2], lines.slice(0, count).join("\n") + "\n");
