// Training checkpoints shared by every trainer (pretrain, sft, distill, grpo).
//
// A training checkpoint is RUN/checkpoints/step-NNNNNN/: the model directory of
// policy::save_model (config.json, model.safetensors, tokenizer.model, and
// tokenizer_config.json with the prompt format trained with), plus
// optimizer.safetensors (AdamW moments and step counts) and trainer_state.json
// ({"step", "recipe", ...trainer-specific state}). It is written into a temporary
// sibling and renamed into place (docs/design.md, "Files are written atomically"), so a
// crash leaves either the old set of checkpoints or the new one, never a half-written
// directory; the newest complete one is where a rerun resumes.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/prompt_format.h"
#include "policy/model.h"

namespace r1kit::train {

// Removes what a killed save left behind: RUN/checkpoints/*.tmp.* and RUN/final.tmp.*
// (core/atomic_file.h temporaries; never a complete checkpoint). Logs what it removed.
void remove_interrupted_saves(const std::string& run_dir);

// The newest complete RUN/checkpoints/step-N directory, or "" when there is none.
std::string latest_checkpoint(const std::string& run_dir);

// The name of the first parameter or buffer of `model` holding a NaN or an infinity; ""
// when every value is finite. Neither a checkpoint nor the final model is written with one.
std::string first_non_finite(policy::TransformerImpl& model);

// Writes RUN/checkpoints/step-{step:06d} atomically. FailedPrecondition, writing
// nothing, when a weight is not finite (first_non_finite). `state` gets "step" added.
// Keeps only the newest `keep_last` checkpoints when keep_last > 0. `extra`, when set,
// writes a trainer's own files into the (temporary) directory before it is renamed.
// `format`, when set, is recorded in tokenizer_config.json (data/prompt_format.h).
Status save_train_checkpoint(policy::TransformerImpl& model, torch::optim::AdamW& opt,
                             const std::string& run_dir, int64_t step, nlohmann::json state,
                             const std::string& tokenizer_path, int64_t keep_last = 0,
                             const std::function<Status(const std::string& dir)>& extra = {},
                             const std::optional<data::PromptFormat>& format = {});

// Writes the finished model to RUN/final (refused like a checkpoint when a weight is not
// finite) (model, config.json, tokenizer.model, and
// tokenizer_config.json with `format` when set) and returns that directory. Every
// trainer ends with it.
StatusOr<std::string> save_final_model(policy::TransformerImpl& model, const std::string& run_dir,
                                       const std::string& tokenizer_path,
                                       const std::optional<data::PromptFormat>& format = {});

// Loads the weights and optimizer state of checkpoint `dir` into `model`/`opt`, and
// returns its trainer_state.json (with an integer "step").
StatusOr<nlohmann::json> load_train_checkpoint(policy::TransformerImpl& model,
                                               torch::optim::AdamW& opt, const std::string& dir);

// Checks that a run may resume from a checkpoint saved with recipe `saved` under the
// recipe `now` (both as config_to_json gives them): every leaf must be equal except
// those under a dotted prefix in `may_change` (e.g. "train.stop_after", "checkpoint",
// "dist"). Otherwise FailedPrecondition naming the first differing key and both values,
// so a changed seed or learning rate cannot silently break an exact resume. A key that
// `saved` lacks (a checkpoint of an r1kit from before the key existed) counts as its value
// in `defaults` (config_to_json of a default recipe; none when empty), so that a newer
// r1kit resumes an older run whose recipe leaves the new key at its default.
Status check_resume_compatible(const nlohmann::json& saved, const nlohmann::json& now,
                               const std::vector<std::string>& may_change,
                               const nlohmann::json& defaults = {});

// The comparison of check_resume_compatible: the first leaf (a dotted key, "train.lr")
// where `saved` and `now` differ outside the prefixes in `may_change`; "" when none.
std::string first_changed_key(const nlohmann::json& saved, const nlohmann::json& now,
                              const std::vector<std::string>& may_change);
// The value at dotted `key` of `j` ("train.optim.lr"); null when absent.
const nlohmann::json& json_at_path(const nlohmann::json& j, const std::string& key);

}  // namespace r1kit::train
