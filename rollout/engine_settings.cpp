#include "rollout/engine_settings.h"

#include "policy/model_config.h"

namespace r1kit::rollout {

EngineOptions EngineSettings::engine_options(int64_t max_seq_len) const {
  EngineOptions o;
  o.max_batch = max_batch;
  o.max_seq_len = max_seq_len;
  o.decode_threads = static_cast<int>(decode_threads);
  return o;
}

StatusOr<policy::LoadOptions> EngineSettings::load_options(std::string_view what) const {
  // The recipe's spellings of a precision (policy/model_config.h), for flags too.
  policy::Precision precision = policy::Precision::kF32;
  if (!enum_from_name<policy::Precision>(dtype, policy::kPrecisionNames, &precision))
    return InvalidArgument("{} '{}': use f32 or bf16", what, dtype);
  policy::LoadOptions load;
  load.dtype = policy::to_torch_dtype(precision);
  return load;
}

}  // namespace r1kit::rollout
