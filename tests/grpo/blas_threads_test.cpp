// BlasThreadsGuard (core/blas_threads.h): sets OpenBLAS's own thread count and puts the
// old one back. Here, in a binary linked with LibTorch, OpenBLAS is loaded (Debian's
// LibTorch calls it through libblas.so.3), so the guard must find it.
#include "core/blas_threads.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

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

// The build links every binary with an RPATH to OpenBLAS's OpenMP build where it is
// installed (CMakeLists.txt): the process must then have loaded that build, whatever the
// system's alternatives name, and the guard must know it runs on LibTorch's threads.
TEST(BlasThreadsTest, TheOpenMpBuildIsTheOneLoaded) {
#ifndef R1KIT_OPENBLAS_OPENMP_DIR
  GTEST_SKIP() << "OpenBLAS's OpenMP build was not installed when this binary was built";
#else
  auto x = torch::ones({64, 64});
  EXPECT_EQ(torch::mm(x, x)[0][0].item<float>(), 64.0f);
  std::ifstream maps("/proc/self/maps");
  std::string line, openblas;
  while (std::getline(maps, line))
    if (line.find("libopenblas") != std::string::npos) openblas = line.substr(line.rfind(' ') + 1);
  EXPECT_EQ(openblas.rfind(R1KIT_OPENBLAS_OPENMP_DIR "/", 0), 0u) << "loaded: " << openblas;
  EXPECT_TRUE(BlasThreadsGuard::shares_openmp());
#endif
}

}  // namespace
}  // namespace r1kit
