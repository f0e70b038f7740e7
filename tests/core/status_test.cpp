#include "core/status.h"

#include <gtest/gtest.h>

namespace r1kit {
namespace {

StatusOr<int> parse_positive(int x) {
  if (x <= 0) return InvalidArgument("x={}: must be > 0", x);
  return x;
}

Status use_macros(int x, int* out) {
  ASSIGN_OR_RETURN(int v, parse_positive(x));
  RETURN_IF_ERROR(v > 100 ? OutOfRange("x={} too large", v) : OkStatus());
  *out = v;
  return OkStatus();
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = InvalidArgument("grpo.group_size={}: must be >= 2", 1);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.to_string(), "INVALID_ARGUMENT: grpo.group_size=1: must be >= 2");
  EXPECT_EQ(s.with_context("recipe.yaml").message(),
            "recipe.yaml: grpo.group_size=1: must be >= 2");
}

TEST(StatusTest, MacrosPropagate) {
  int out = 0;
  EXPECT_TRUE(use_macros(5, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(use_macros(-1, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(use_macros(500, &out).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(out, 5);
}

TEST(StatusTest, StatusOrFromOkStatusIsInternalError) {
  StatusOr<int> s = OkStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace r1kit
