// BlasThreadsGuard (core/blas_threads.h): sets OpenBLAS's own thread count and puts the
// old one back. Here, in a binary linked with LibTorch, OpenBLAS is loaded (Debian's
// LibTorch calls it through libblas.so.3), so the guard must find it.
#include "core/blas_threads.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace r1kit {
namespace {

TEST(BlasThreadsTest, GuardSetsAndRestoresOpenBlasThreads) {
  // A matmul first, so the BLAS library has surely been loaded and used.
  auto x = torch::ones({64, 64});
  EXPECT_EQ(torch::mm(x, x)[0][0].item<float>(), 64.0f);
  const int before = BlasThreadsGuard::current();
  ASSERT_GT(before, 0) << "OpenBLAS not found in the process";
  {
    BlasThreadsGuard one(1);
    EXPECT_EQ(BlasThreadsGuard::current(), 1);
    {
      BlasThreadsGuard two(2);
      EXPECT_EQ(BlasThreadsGuard::current(), 2);
    }
    EXPECT_EQ(BlasThreadsGuard::current(), 1);
    EXPECT_EQ(torch::mm(x, x)[0][0].item<float>(), 64.0f);
  }
  EXPECT_EQ(BlasThreadsGuard::current(), before);
}

}  // namespace
}  // namespace r1kit
