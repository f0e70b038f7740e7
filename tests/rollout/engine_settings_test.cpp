// rollout/engine_settings.h: the settings map onto EngineOptions field by field, and the
// dtype onto LoadOptions, with an error that names the setting for a bad one.
#include "rollout/engine_settings.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace r1kit::rollout {
namespace {

TEST(EngineSettingsTest, EngineOptionsCarryEveryField) {
  const EngineSettings s{12, 3, "f32"};
  const EngineOptions o = s.engine_options(96);
  EXPECT_EQ(o.max_batch, 12);
  EXPECT_EQ(o.decode_threads, 3);
  EXPECT_EQ(o.max_seq_len, 96);
  EXPECT_EQ(s.engine_options().max_seq_len, 0);  // the model's
  // The rest stay at the engine's defaults.
  EXPECT_EQ(o.share_prefix, EngineOptions{}.share_prefix);
  EXPECT_EQ(o.decode_impl, EngineOptions{}.decode_impl);
}

TEST(EngineSettingsTest, DtypeBecomesLoadOptions) {
  EngineSettings s;
  auto f32 = s.load_options();
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(f32->dtype, torch::kFloat);
  s.dtype = "bf16";
  auto bf16 = s.load_options();
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(bf16->dtype, torch::kBFloat16);
  s.dtype = "fp16";
  auto bad = s.load_options("--dtype");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "--dtype 'fp16': use f32 or bf16");
}

}  // namespace
}  // namespace r1kit::rollout
