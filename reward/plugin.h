// Loading reward plug-ins from shared libraries (the C ABI in reward/plugin_abi.h).
//
// A recipe lists plug-in libraries (e.g. `reward_plugins: [/path/libmy_rewards.so]`);
// the trainer calls load_reward_plugins() at start, and the rewards they export are
// then built by name like the built-in ones.
// Different on purpose: a plug-in that fails at score time (non-zero return, wrong
// output) marks its batch "cannot judge" (NaN) and training goes on; a plug-in that
// fails to load or to create an instance is an error at start, naming the library.
// Libraries are never unloaded (the registry may hold their functions until exit).
//
// Thread-safety: load_reward_plugins() takes the registry's lock per reward; plug-in
// rewards are as thread-safe as the plug-in's score() (which the ABI requires).
#pragma once

#include <string>
#include <vector>

#include "reward/reward.h"

namespace r1kit::reward {

// dlopens `path` and registers every reward it exports into `registry`. Errors name
// the library: missing file, no r1kit_reward_plugins symbol, ABI version mismatch,
// a name already registered.
Status load_reward_plugin(const std::string& path,
                          RewardRegistry& registry = RewardRegistry::global());
Status load_reward_plugins(const std::vector<std::string>& paths,
                           RewardRegistry& registry = RewardRegistry::global());

// The samples as the JSON array the plug-in ABI passes.
std::string samples_to_json(std::span<const Sample> group);

}  // namespace r1kit::reward
