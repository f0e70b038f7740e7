#include "rollout/engine_settings.h"

namespace r1kit::rollout {

EngineOptions EngineSettings::engine_options(int64_t max_seq_len) const {
  EngineOptions o;
  o.max_batch = max_batch;
  o.max_seq_len = max_seq_len;
  o.decode_threads = static_cast<int>(decode_threads);
  return o;
}

StatusOr<policy::LoadOptions> EngineSettings::load_options(std::string_view what) const {
  policy::LoadOptions load;
  if (dtype == "bf16")
    load.dtype = torch::kBFloat16;
  else if (dtype != "f32")
    return InvalidArgument("{} '{}': use f32 or bf16", what, dtype);
  return load;
}

}  // namespace r1kit::rollout
