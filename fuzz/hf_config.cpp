// Fuzz target: a Hugging Face config.json (fuzz/fuzz_target.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_target.h"
#include "policy/model_args.h"

namespace r1kit::fuzz {

Outcome hf_config(std::span<const uint8_t> data) {
  constexpr std::string_view kName = "hf_config";
  auto args = policy::parse_hf_config(as_text(data), "config.json");
  if (!args.ok()) return classify(kName, args.status());

  // What loading a checkpoint does next (policy/checkpoint.h load_model): the sizes, in
  // floating point and saturating integers, and the memory check. None may overflow.
  if (Status s = args->validate(); !s.ok()) bug(kName, "accepted args fail validate(): " + s.message());
  (void)policy::count_params(*args);
  (void)policy::model_memory_bytes(*args, 2);
  (void)args->kv_cache_bytes_per_token();
  (void)args->softmax_scale();
  classify(kName, policy::check_model_memory(*args, 2, "config.json"));

  // A saved checkpoint's config.json (args_to_hf_config) must load again to itself.
  const nlohmann::json written = policy::args_to_hf_config(*args);
  const std::string text = written.dump();
  auto again = policy::parse_hf_config(text, "written config.json");
  if (!again.ok())
    bug(kName, fmt::format("the written config.json does not load: {}\n{}", again.status().message(), text));
  if (policy::args_to_hf_config(*again) != written)
    bug(kName, "the written config.json loads to other args:\n" + text);
  return Outcome::kAccepted;
}

}  // namespace r1kit::fuzz
