// An example reward plug-in: `keyword_bonus` scores 1 when the completion contains a
// keyword (args: {"keyword": "...", "bonus": 1.0}), else 0; NaN when the sample's
// metadata has "skip": true. Built as libr1kit_example_reward_plugin.so and loaded in
// tests/reward/plugin_test.cpp.
//
// It uses only reward/plugin_abi.h (a C ABI) and nlohmann/json (header-only), so it
// could be built by any compiler, outside this repository:
//   g++ -std=c++17 -shared -fPIC keyword_bonus_plugin.cpp -o libkeyword_bonus.so
// then listed in a recipe: `reward_plugins: [./libkeyword_bonus.so]` and
// `reward: [{name: keyword_bonus, weight: 0.1, keyword: "therefore"}]`.
#include <cmath>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "reward/plugin_abi.h"

namespace {

struct KeywordBonus {
  std::string keyword;
  double bonus = 1.0;
};

void set_err(char* err, size_t size, const std::string& msg) {
  if (size > 0) std::snprintf(err, size, "%s", msg.c_str());
}

void* create(const char* args_json, char* err, size_t err_size) {
  try {
    nlohmann::json args = nlohmann::json::parse(args_json);
    auto* r = new KeywordBonus();
    for (auto it = args.begin(); it != args.end(); ++it) {
      if (it.key() == "keyword" && it->is_string()) {
        r->keyword = it->get<std::string>();
      } else if (it.key() == "bonus" && it->is_number()) {
        r->bonus = it->get<double>();
      } else {
        delete r;
        set_err(err, err_size, "unknown or mistyped argument \"" + it.key() + "\"");
        return nullptr;
      }
    }
    if (r->keyword.empty()) {
      delete r;
      set_err(err, err_size, "keyword: required, a non-empty string");
      return nullptr;
    }
    return r;
  } catch (const std::exception& e) {
    set_err(err, err_size, e.what());
    return nullptr;
  }
}

int score(void* instance, const char* samples_json, size_t n, double* out, char* err,
          size_t err_size) {
  try {
    const auto* r = static_cast<const KeywordBonus*>(instance);
    nlohmann::json samples = nlohmann::json::parse(samples_json);
    if (!samples.is_array() || samples.size() != n) {
      set_err(err, err_size, "expected an array of n samples");
      return 1;
    }
    for (size_t i = 0; i < n; ++i) {
      const auto& s = samples[i];
      if (s["metadata"].value("skip", false)) {
        out[i] = NAN;
        continue;
      }
      const std::string completion = s["completion"].get<std::string>();
      out[i] = completion.find(r->keyword) != std::string::npos ? r->bonus : 0.0;
    }
    return 0;
  } catch (const std::exception& e) {
    set_err(err, err_size, e.what());
    return 2;
  }
}

void destroy(void* instance) {
  delete static_cast<KeywordBonus*>(instance);
}

const r1kit_reward_plugin_v1 kPlugins[] = {
    {R1KIT_REWARD_PLUGIN_ABI_VERSION, "keyword_bonus",
     "bonus when the completion contains a keyword (example plug-in)", &create, &score, &destroy},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const r1kit_reward_plugin_v1*
r1kit_reward_plugins(size_t* count) {
  *count = sizeof(kPlugins) / sizeof(kPlugins[0]);
  return kPlugins;
}
