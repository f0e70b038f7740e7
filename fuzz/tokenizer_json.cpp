// Fuzz target: a tokenizer.json (fuzz/fuzz_target.h). Bytes up to the first NUL are the
// tokenizer.json; after it, a tokenizer_config.json (JSON text holds no raw NUL, so the
// two never mix). Without a NUL there is no config file.
#include <fmt/format.h>

#include <vector>

#include "data/hf_tokenizer.h"
#include "fuzz/fuzz_target.h"

namespace r1kit::fuzz {

Outcome tokenizer_json(std::span<const uint8_t> data) {
  constexpr std::string_view kName = "tokenizer_json";
  const auto [json_text, config_view] = split_at(as_text(data), '\0');
  const std::string config_text(config_view);
  auto tok = data::hf::HfTokenizer::parse(std::string(json_text), config_text, "tokenizer.json");
  if (!tok.ok()) return classify(kName, tok.status());
  const data::hf::HfTokenizer& t = **tok;
  const int vocab = t.ids().vocab_size;

  // Every id encode() takes from the vocabulary or the added tokens lies inside the
  // vocabulary. The post-processor's ids (add_special) are exempt: they are the file's
  // own numbers, which the Rust library emits unchecked too (a file whose template names
  // ids outside its vocabulary is kept in the corpus as valid-post-processor-ids-*).
  auto check = [&](std::string_view sample) {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = t.encode(sample, special);
      if (!special)
        for (int32_t id : ids)
          if (id < 0 || id >= vocab)
            bug(kName, fmt::format("encode gave id {} outside the vocabulary of {}", id, vocab));
      (void)t.decode(ids, /*keep_special=*/special);
      for (size_t i = 0; i < ids.size() && i < 8; ++i) (void)t.piece_to_id(t.id_to_piece(ids[i]));
    }
  };
  check("Hello world! What is 12*3+4? <think> 36 + 4 = 40 </think> é 漢字 \xF0\x9F\x99\x82");
  check(json_text.substr(0, 256));  // the file's own bytes, invalid UTF-8 and all
  // Ids the vocabulary may not hold decode to something (unknown ids are dropped).
  const std::vector<int32_t> probe = {0, 1, 2, vocab - 1, vocab, -1, 1 << 30};
  (void)t.decode(probe, true);
  (void)t.decode(probe, false);
  for (int32_t id : probe) (void)t.id_to_piece(id);
  return Outcome::kAccepted;
}

}  // namespace r1kit::fuzz
