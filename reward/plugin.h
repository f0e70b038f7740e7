// Loading reward plug-ins from shared libraries (the C ABI in reward/plugin_abi.h).
//
// A recipe lists plug-in libraries (e.g. `reward_plugins: [/path/libmy_rewards.so]` in
// the grpo, run and distill recipes; `--plugin` on `r1kit eval` and `r1kit reward`); the
// recipe calls load_reward_plugins() at start, and the rewards they export are then
// built by name like the built-in ones. A relative path is resolved against the current
// directory (never searched on the library path); loading a library that is already
// loaded into the same registry, under any path, is a no-op.
// Different on purpose: a plug-in that fails at score time (non-zero return, wrong
// output) marks its batch "cannot judge" (NaN) and training goes on; a plug-in that
// fails to load or to create an instance is an error at start, naming the library.
// Libraries are never unloaded (the registry may hold their functions until exit).
//
// Thread-safety: loads are serialised by a process-wide lock; plug-in
// rewards are as thread-safe as the plug-in's score() (which the ABI requires).
#pragma once

#include <string>
#include <vector>

#include "reward/reward.h"

namespace r1kit::reward {

// dlopens `path` and registers every reward it exports into `registry`. Errors name
// the library: missing file (NotFound), not a loadable library or no
// r1kit_reward_plugins symbol (InvalidArgument), ABI version mismatch, a name already
// registered by something else (AlreadyExists). Loading the same library into the same
// registry again returns OK and changes nothing.
Status load_reward_plugin(const std::string& path,
                          RewardRegistry& registry = RewardRegistry::global());
Status load_reward_plugins(const std::vector<std::string>& paths,
                           RewardRegistry& registry = RewardRegistry::global());

// The samples as the JSON array the plug-in ABI passes.
std::string samples_to_json(std::span<const Sample> group);

}  // namespace r1kit::reward
