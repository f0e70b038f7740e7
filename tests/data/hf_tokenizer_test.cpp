// Hand-computed tests of each tokenizer.json component on tiny tokenizers written here,
// the load rules (file, directory, config, bytes), and the errors for what r1kit does not
// support. The real files are checked against the reference in
// hf_tokenizer_reference_test.cpp.
#include "data/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_pretokenizer.h"
#include "data/hf_text.h"
#include "data/tokenizer.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

// A byte-level BPE tokenizer over a few letters: "a b" merges first, then "ab c", then "Ġ a".
json tiny_byte_level() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 13, "content": "<s>", "special": true, "lstrip": false, "rstrip": false,
       "single_word": false, "normalized": false},
      {"id": 14, "content": "</s>", "special": true, "lstrip": false, "rstrip": false,
       "single_word": false, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                      "use_regex": true},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [13], "tokens": ["<s>"]},
                                     "</s>": {"id": "</s>", "ids": [14], "tokens": ["</s>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
              "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5, "Ġa": 6, "1": 7, "2": 8,
                        "Ã": 9, "©": 10, "Ã©": 11, "x": 12},
              "merges": ["a b", ["ab", "c"], "Ġ a", "Ã ©"]}
  })");
}

StatusOr<Tokenizer> from_json(const json& j) {
  return Tokenizer::from_bytes(j.dump());
}

Tokenizer must(const json& j) {
  auto t = from_json(j);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return *t;
}

TEST(HfBpe, MergesByRankBothForms) {
  const Tokenizer tok = must(tiny_byte_level());
  EXPECT_EQ(tok.format(), TokenizerFormat::kHuggingFace);
  EXPECT_EQ(tok.encode("abc"), (Ids{5}));  // a b -> ab (rank 0), ab c -> abc (rank 1)
  // " ab": Ġ a b; (a b) has rank 0 < (Ġ a) rank 2, so "ab" forms first and Ġ stays alone.
  EXPECT_EQ(tok.encode("abc ab"), (Ids{5, 3, 4}));
  EXPECT_EQ(tok.encode(" a"), (Ids{6}));
  EXPECT_EQ(tok.encode("é"), (Ids{11}));  // bytes C3 A9 -> "Ã©"
  EXPECT_EQ(tok.encode(""), (Ids{}));
  EXPECT_EQ(tok.encode("ab", true), (Ids{13, 4, 14}));
  EXPECT_EQ(tok.bos_id(), 13);  // no config: the template's first and last special ids
  EXPECT_EQ(tok.eos_id(), 14);
  EXPECT_EQ(tok.pad_id(), -1);
  EXPECT_EQ(tok.unk_id(), -1);
  EXPECT_EQ(tok.vocab_size(), 15);
  EXPECT_EQ(tok.id_to_piece(3), "Ġ");
  EXPECT_EQ(tok.id_to_piece(13), "<s>");
  EXPECT_EQ(tok.piece_to_id("Ã©"), 11);
  EXPECT_EQ(tok.piece_to_id("zz"), -1);
}

// As the Rust library loads added tokens: a token the vocabulary holds gets its id there,
// others the next ids from the vocabulary's size on, whatever "id" the file gives.
TEST(HfAddedTokens, IdsFollowTheVocabularyAsInTheRustLibrary) {
  json j = tiny_byte_level();
  j["added_tokens"][0]["id"] = 20;  // <s>: not in the vocabulary, 13 entries: gets 13
  j["added_tokens"].push_back({{"id", 30}, {"content", "ab"}, {"special", false}});
  const Tokenizer tok = must(j);
  EXPECT_EQ(tok.piece_to_id("<s>"), 13);
  EXPECT_EQ(tok.piece_to_id("ab"), 4);  // the vocabulary's id
  EXPECT_EQ(tok.encode("xab"), (Ids{12, 4}));
}

TEST(HfBpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json j = tiny_byte_level();
  j["model"]["merges"] = json::array({"a b"});
  EXPECT_EQ(must(j).encode("abc"), (Ids{4, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(must(j).encode("abc"), (Ids{5}));
}

json tiny_plain(json vocab, json merges) {
  json j = tiny_byte_level();
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = nullptr;
  j["post_processor"] = nullptr;
  j["added_tokens"] = json::array();
  j["model"]["vocab"] = std::move(vocab);
  j["model"]["merges"] = std::move(merges);
  return j;
}

TEST(HfBpe, ByteFallbackUnkAndFuse) {
  json j = tiny_plain({{"a", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"<unk>", 3}}, json::array());
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(must(j).encode("aé"), (Ids{0, 1, 2}));       // é is not in the vocabulary: its bytes
  EXPECT_EQ(must(j).encode("aZZa"), (Ids{0, 3, 3, 0}));  // no <0x5A>: unk per character
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(must(j).encode("aZZa"), (Ids{0, 3, 0}));
  j["model"]["unk_token"] = nullptr;
  EXPECT_EQ(must(j).encode("aZZa"), (Ids{0, 0}));  // no unk_token: unknown characters vanish
}

TEST(HfBpe, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  json j = tiny_plain({{"a", 0}, {"##b", 1}, {"##c</w>", 2}, {"ab", 3}, {"abc</w>", 4}},
                      json::array({"a ##b", "ab ##c</w>"}));
  j["model"]["continuing_subword_prefix"] = "##";
  j["model"]["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(must(j).encode("abc"), (Ids{4}));  // a ##b ##c</w> -> ab ##c</w> -> abc</w>
}

TEST(HfNormalizer, EachTypeByHand) {
  auto norm = [](const char* spec, std::string text) {
    auto n = hf::parse_normalizer(json::parse(spec), "normalizer");
    EXPECT_TRUE(n.ok()) << n.status().to_string();
    (*n)->normalize(text);
    return text;
  };
  EXPECT_EQ(norm(R"({"type": "NFC"})", "e\xCC\x81"), "\xC3\xA9");  // e + U+0301 -> é
  EXPECT_EQ(norm(R"({"type": "NFD"})", "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(norm(R"({"type": "NFKC"})", "\xEF\xAC\x81 \xC2\xB2"), "fi 2");   // ﬁ ² -> fi 2
  EXPECT_EQ(norm(R"({"type": "Lowercase"})", "ÀB\xC4\xB0"), "àbi\xCC\x87");  // İ -> i + U+0307
  EXPECT_EQ(norm(R"({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})", "a b  c"),
            "a▁b▁▁c");
  EXPECT_EQ(norm(R"({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"})", "a \t b"),
            "a_b");
  EXPECT_EQ(norm(R"({"type": "Prepend", "prepend": "▁"})", "ab"), "▁ab");
  EXPECT_EQ(norm(R"({"type": "Prepend", "prepend": "▁"})", ""), "");
  EXPECT_EQ(norm(R"({"type": "Sequence", "normalizers": [{"type": "Lowercase"},
                  {"type": "Prepend", "prepend": "_"}]})",
                 "AB"),
            "_ab");
}

std::vector<std::string> pre(const std::string& spec, const std::string& text) {
  auto p = hf::parse_pre_tokenizer(json::parse(spec), "pre_tokenizer");
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  std::vector<hf::Piece> pieces{{text, true}};
  (*p)->pre_tokenize(pieces);
  std::vector<std::string> out;
  for (const auto& piece : pieces) out.push_back(piece.text);
  return out;
}

using Strs = std::vector<std::string>;

TEST(HfPreTokenizer, SplitBehaviorsAsDocumented) {
  auto split = [](const char* behavior, bool invert = false) {
    return pre(fmt::format(R"({{"type": "Split", "pattern": {{"Regex": "\\d"}}, "behavior": "{}",
                               "invert": {}}})",
                           behavior, invert),
               "a1b2");
  };
  EXPECT_EQ(split("Removed"), (Strs{"a", "b"}));
  EXPECT_EQ(split("Isolated"), (Strs{"a", "1", "b", "2"}));
  EXPECT_EQ(split("MergedWithPrevious"), (Strs{"a1", "b2"}));
  EXPECT_EQ(split("MergedWithNext"), (Strs{"a", "1b", "2"}));
  EXPECT_EQ(split("Removed", true), (Strs{"1", "2"}));
  EXPECT_EQ(pre(R"({"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Contiguous",
                    "invert": false})",
                "a12b3"),
            (Strs{"a", "12", "b", "3"}));
  EXPECT_EQ(pre(R"({"type": "Split", "pattern": {"String": "--"}, "behavior": "Isolated",
                    "invert": false})",
                "a--b---c"),
            (Strs{"a", "--", "b", "--", "-c"}));
}

TEST(HfPreTokenizer, ByteLevelDigitsMetaspaceWhitespace) {
  EXPECT_EQ(
      pre(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})", "Hi you're  x"),
      (Strs{"ĠHi", "Ġyou", "'re", "Ġ", "Ġx"}));
  EXPECT_EQ(pre(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})", "\n é"),
            (Strs{"ĊĠÃ©"}));
  EXPECT_EQ(pre(R"({"type": "Digits", "individual_digits": true})", "a123"),
            (Strs{"a", "1", "2", "3"}));
  EXPECT_EQ(pre(R"({"type": "Digits", "individual_digits": false})", "a123b٣"),
            (Strs{"a", "123", "b", "٣"}));
  EXPECT_EQ(pre(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                    "split": true})",
                "Hey  you"),
            (Strs{"▁Hey", "▁", "▁you"}));
  EXPECT_EQ(pre(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never",
                    "split": false})",
                "Hey you"),
            (Strs{"Hey▁you"}));
  EXPECT_EQ(pre(R"({"type": "Whitespace"})", "Hi, you!  ok"), (Strs{"Hi", ",", "you", "!", "ok"}));
  EXPECT_EQ(pre(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                    {"type": "Digits", "individual_digits": true}]})",
                "a1 b"),
            (Strs{"a", "1", "b"}));
}

// Oniguruma's full case folding, which the JS reference cannot reproduce (its README):
// (?i:ss) matches "ß" as in the Rust library.
TEST(HfPreTokenizer, OnigurumaCaseFoldingAsRust) {
  auto split_at = [](const std::string& regex, const std::string& text) {
    const json spec = {{"type", "Split"},
                       {"pattern", {{"Regex", regex}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
    return pre(spec.dump(), text);
  };
  EXPECT_EQ(split_at("(?i:ss)", "Straße"), (Strs{"Stra", "ß", "e"}));
  EXPECT_EQ(split_at("(?i:'s)", "IT'S"), (Strs{"IT", "'S"}));
}

TEST(HfAddedTokens, MatchedBeforeNormalizationWithStripAndSingleWord) {
  json j = tiny_plain({{"a", 0}, {"b", 1}, {" ", 2}}, json::array());
  j["normalizer"] = json::parse(R"({"type": "Lowercase"})");
  auto added = [](int id, const char* content, bool special, bool normalized) {
    return json{
        {"id", id},        {"content", content},   {"special", special},      {"lstrip", false},
        {"rstrip", false}, {"single_word", false}, {"normalized", normalized}};
  };
  j["added_tokens"] = json::array({added(3, "<X>", true, false), added(4, "ab", false, true),
                                   added(5, "[L]", false, false), added(6, "[W]", false, false)});
  j["added_tokens"][2]["lstrip"] = true;
  j["added_tokens"][2]["rstrip"] = true;
  j["added_tokens"][3]["single_word"] = true;
  const Tokenizer tok = must(j);
  // "<X>" is found in the raw text; "AB" lowercases to "ab", which then matches token 11.
  EXPECT_EQ(tok.encode("a<X>AB"), (Ids{0, 3, 4}));
  EXPECT_EQ(tok.encode("<x>"), (Ids{}));  // lowercase <x> is not the token; <, x, > unknown
  EXPECT_EQ(tok.encode("a  [L]  b"), (Ids{0, 5, 1}));  // the spaces go into the match
  EXPECT_EQ(tok.encode("a [W] b"), (Ids{0, 2, 6, 2, 1}));
  EXPECT_EQ(tok.encode("a[W]b"), (Ids{0, 1}));  // touching word characters: not the token
  EXPECT_EQ(tok.decode(Ids{3, 4, 5}, true), "<X> ab [L]");  // no decoder: joined by " "
}

TEST(HfDecoder, EachTypeByHand) {
  auto dec = [](const char* spec, std::vector<std::string> tokens) {
    auto d = hf::parse_decoder(json::parse(spec), "decoder");
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    std::string out;
    for (const auto& t : (*d)->decode_chain(std::move(tokens))) out += t;
    return out;
  };
  EXPECT_EQ(dec(R"({"type": "ByteLevel"})", {"Hi", "Ġyou", "Ã©", "<|x|>"}), "Hi youé<|x|>");
  EXPECT_EQ(dec(R"({"type": "ByteLevel"})", {"Ã", "a"}),
            "\xEF\xBF\xBD"
            "a");  // lone C3 byte
  EXPECT_EQ(dec(R"({"type": "ByteFallback"})", {"a", "<0xC3>", "<0xA9>", "b"}), "aéb");
  // A run that is not valid UTF-8 as a whole: one U+FFFD per byte.
  EXPECT_EQ(dec(R"({"type": "ByteFallback"})", {"<0xC3>", "<0xA9>", "<0xC3>"}),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(dec(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"})",
                {"▁Hey", "▁you"}),
            "Hey you");
  EXPECT_EQ(dec(R"({"type": "Strip", "content": " ", "start": 1, "stop": 0})", {"  a", " b"}),
            " ab");
  EXPECT_EQ(dec(R"({"type": "Replace", "pattern": {"String": "▁"}, "content": " "})", {"a▁b"}),
            "a b");
  EXPECT_EQ(dec(R"({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"},
                  "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})",
                {"▁a", "<0x21>"}),
            "a!");
}

TEST(HfDecode, ByteLevelRoundTripAndSpecialIds) {
  const Tokenizer tok = must(tiny_byte_level());
  EXPECT_EQ(tok.decode(Ids{13, 5, 3, 4, 14}), "abc ab");      // BOS/EOS skipped
  EXPECT_EQ(tok.decode(Ids{13, 5, 14}, true), "<s>abc</s>");  // kept
  EXPECT_EQ(tok.decode(Ids{5, 999, -1}), "abc");              // unknown ids skipped
}

TEST(HfText, InvalidUtf8BecomesReplacementCharacters) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(hf::utf8_replace_invalid("a\x80"
                                     "b"),
            "a" + r + "b");
  EXPECT_EQ(hf::utf8_replace_invalid("\xC0\xAF"), r + r);  // C0 never starts a character
  EXPECT_EQ(hf::utf8_replace_invalid("\xE2\x82"
                                     "A"),
            r + "A");                                              // one maximal subpart
  EXPECT_EQ(hf::utf8_replace_invalid("\xED\xA0\x80"), r + r + r);  // surrogate: ED A0 is ill-formed
  EXPECT_EQ(hf::utf8_replace_invalid("\xF0\x9F\x98"), r);
  EXPECT_EQ(hf::utf8_replace_invalid("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(hf::utf8_replace_invalid("ok é 😀"), "ok é 😀");
  const Tokenizer tok = must(tiny_byte_level());
  EXPECT_EQ(tok.encode("ab\xFF"), tok.encode("ab" + r));
}

TEST(HfConfig, ConfigNamesSpecialIdsAndLoadRules) {
  const testing::ScopedTempDir tmp("r1kit_hf_cfg");
  const fs::path& dir = tmp.path();
  ASSERT_TRUE(write_file_atomic((dir / "tokenizer.json").string(), tiny_byte_level().dump()).ok());
  ASSERT_TRUE(write_file_atomic((dir / "tokenizer_config.json").string(),
                                R"({"bos_token": null, "eos_token": {"content": "<s>"},
                                    "pad_token": "</s>"})")
                  .ok());
  auto tok = Tokenizer::load(dir.string());  // a directory: its tokenizer.json
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 13);
  EXPECT_EQ(tok->pad_id(), 14);
  EXPECT_EQ(tokenizer_file_in(dir.string()), (dir / "tokenizer.json").string());
  auto files = tokenizer_files(dir.string());
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[1].second, "tokenizer_config.json");
  ASSERT_TRUE(
      write_file_atomic((dir / "tokenizer_config.json").string(), R"({"eos_token": "<nope>"})")
          .ok());
  auto bad = Tokenizer::load((dir / "tokenizer.json").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("eos_token '<nope>'"), std::string::npos)
      << bad.status().message();
}

// Generation stops at the checkpoint's eos_token_id list (generation_config.json first,
// else config.json), not only at the tokenizer's EOS; a bad id is an error naming the file.
TEST(HfConfig, StopIdsComeFromTheCheckpointsEosTokenIdList) {
  const testing::ScopedTempDir tmp("r1kit_hf_stop");
  const fs::path& dir = tmp.path();
  ASSERT_TRUE(write_file_atomic((dir / "tokenizer.json").string(), tiny_byte_level().dump()).ok());
  ASSERT_TRUE(
      write_file_atomic((dir / "tokenizer_config.json").string(), R"({"eos_token": "<s>"})").ok());
  auto alone = Tokenizer::load(dir.string());
  ASSERT_TRUE(alone.ok()) << alone.status().to_string();
  EXPECT_EQ(alone->stop_ids(), (std::vector<int64_t>{13}));

  ASSERT_TRUE(write_file_atomic((dir / "config.json").string(),
                                R"({"eos_token_id": [13, 14, 5], "vocab_size": 15})")
                  .ok());
  auto listed = Tokenizer::load((dir / "tokenizer.json").string());
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  EXPECT_EQ(listed->eos_id(), 13);
  EXPECT_EQ(listed->stop_ids(), (std::vector<int64_t>{13, 14, 5}));

  // generation_config.json wins over config.json, as in Hugging Face's generate().
  ASSERT_TRUE(
      write_file_atomic((dir / "generation_config.json").string(), R"({"eos_token_id": 7})").ok());
  auto generation = Tokenizer::load(dir.string());
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(generation->stop_ids(), (std::vector<int64_t>{13, 7}));

  ASSERT_TRUE(
      write_file_atomic((dir / "generation_config.json").string(), R"({"eos_token_id": [-1]})")
          .ok());
  auto bad = Tokenizer::load(dir.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("generation_config.json: 'eos_token_id'"),
            std::string::npos)
      << bad.status().message();
}

std::string error_of(const json& j) {
  auto t = from_json(j);
  return t.ok() ? std::string("(loaded)") : t.status().message();
}

// A vocabulary id far past the vocabulary's size sized the id -> token table by it (id
// 10^9: 32 GB); found by fuzz/tokenizer_json, whose corpus keeps the input. Small gaps
// still load.
TEST(HfErrors, VocabularyIdFarPastItsSizeIsRefusedBeforeAnyAllocation) {
  json j = tiny_byte_level();
  j["model"]["vocab"]["x"] = 1111110512;
  EXPECT_NE(error_of(j).find("model.vocab['x']: id 1111110512 is far past the 13 tokens"),
            std::string::npos)
      << error_of(j);
  j["model"]["vocab"]["x"] = 13 + 65535;  // the largest gap allowed
  EXPECT_EQ(error_of(j), "(loaded)");
}

TEST(HfErrors, UnsupportedComponentsAreNamed) {
  json j = tiny_byte_level();
  j["normalizer"] = json::parse(R"({"type": "BertNormalizer"})");
  EXPECT_NE(error_of(j).find("normalizer: unsupported normalizer type 'BertNormalizer'"),
            std::string::npos)
      << error_of(j);
  j = tiny_byte_level();
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false}]})");
  EXPECT_NE(error_of(j).find("pre_tokenizer.pretokenizers[0]: unknown Split behavior 'Sideways'"),
            std::string::npos)
      << error_of(j);
  j = tiny_byte_level();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"Regex": "(unclosed"},
                                       "behavior": "Isolated", "invert": false})");
  EXPECT_NE(error_of(j).find("does not compile"), std::string::npos) << error_of(j);
  j = tiny_byte_level();
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(error_of(j).find("unsupported model type 'WordPiece'"), std::string::npos)
      << error_of(j);
  j = tiny_byte_level();
  j["model"]["dropout"] = 0.1;
  EXPECT_NE(error_of(j).find("dropout=0.1"), std::string::npos) << error_of(j);
  j = tiny_byte_level();
  j["decoder"] = json::parse(R"({"type": "CTC"})");
  EXPECT_NE(error_of(j).find("unsupported decoder type 'CTC'"), std::string::npos) << error_of(j);
  j = tiny_byte_level();
  j["post_processor"] = json::parse(R"({"type": "RobertaProcessing"})");
  EXPECT_NE(error_of(j).find("unsupported post_processor type 'RobertaProcessing'"),
            std::string::npos);
  j = tiny_byte_level();
  j["truncation"] = json::parse(R"({"max_length": 8})");
  EXPECT_NE(error_of(j).find("truncation is set"), std::string::npos) << error_of(j);
  j = tiny_byte_level();
  j["model"]["merges"] = json::array({"a zz"});
  EXPECT_NE(error_of(j).find("'zz' is not in the vocabulary"), std::string::npos) << error_of(j);
  EXPECT_EQ(Tokenizer::from_bytes("{not json").status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace r1kit::data
