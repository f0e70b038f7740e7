// model.compute: auto picks bf16 exactly where the CPU flags name native bf16 (train/compute.h).
#include "train/compute.h"

#include <gtest/gtest.h>

#include "core/config.h"

namespace r1kit::train {
namespace {

using policy::Compute;
using policy::Precision;

TEST(ComputeTest, AutoIsBf16OnlyWithNativeBf16) {
  const std::string avx2 = "fpu sse2 avx avx2 fma";
  const std::string avx512 = "fpu avx2 avx512f avx512bw avx512vl avx512_vnni";
  const std::string cooper_lake = avx512 + " avx512_bf16";
  const std::string sapphire_rapids = avx512 + " amx_bf16 amx_tile amx_int8";
  EXPECT_EQ(resolve_compute(Compute::kAuto, avx2), Precision::kF32);
  EXPECT_EQ(resolve_compute(Compute::kAuto, avx512), Precision::kF32);
  EXPECT_EQ(resolve_compute(Compute::kAuto, cooper_lake), Precision::kBf16);
  EXPECT_EQ(resolve_compute(Compute::kAuto, sapphire_rapids), Precision::kBf16);
  EXPECT_EQ(resolve_compute(Compute::kAuto, ""), Precision::kF32);  // no /proc/cpuinfo
  // Whole flags only.
  EXPECT_EQ(resolve_compute(Compute::kAuto, "avx512_bf16x amx_bf16_y"), Precision::kF32);
  EXPECT_EQ(resolve_compute(Compute::kAuto, "amx_bf16\tavx2"), Precision::kBf16);
  // An explicit choice is kept whatever the CPU.
  EXPECT_EQ(resolve_compute(Compute::kBf16, avx2), Precision::kBf16);
  EXPECT_EQ(resolve_compute(Compute::kF32, cooper_lake), Precision::kF32);
  EXPECT_EQ(describe_compute(Compute::kAuto, cooper_lake), "bf16 (auto)");
  EXPECT_EQ(describe_compute(Compute::kAuto, avx2), "f32 (auto)");
  EXPECT_EQ(describe_compute(Compute::kBf16, avx2), "bf16");
}

TEST(ComputeTest, ThisCpuFlagsComeFromProcCpuinfo) {
  // On Linux x86 every CPU has the fpu flag; elsewhere the flags are empty.
  const std::string& flags = this_cpu_flags();
  if (!flags.empty()) {
    EXPECT_NE(flags.find("fpu"), std::string::npos) << flags;
  }
  EXPECT_EQ(&flags, &this_cpu_flags());  // read once
}

struct WithModel {
  policy::ModelConfig model;
  void visit(ConfigVisitor& v) { v.section("model", model, "model"); }
};

TEST(ComputeTest, RecipeKeyTakesTheThreeChoices) {
  for (const auto& [text, want] :
       {std::pair{"f32", Compute::kF32}, {"bf16", Compute::kBf16}, {"auto", Compute::kAuto}}) {
    auto r = load_config_string<WithModel>("model: {compute: " + std::string(text) + "}");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->model.compute, want);
  }
  EXPECT_EQ(WithModel{}.model.compute, Compute::kF32);  // the default keeps f32
  auto bad = load_config_string<WithModel>("model: {compute: fp16}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auto"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace r1kit::train
