// The files r1kit keeps open while rewards run programs (metrics.jsonl, the TensorBoard
// event file) are close-on-exec, so no program it starts inherits them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/metrics.h"
#include "tests/temp_dir.h"

namespace r1kit {
namespace {

// The flags of the descriptor this process holds open on `path` (-1: none).
int fd_flags_of(const std::string& path) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind(path, 0) == 0) {
      return fcntl(std::stoi(e.path().filename().string()), F_GETFD);
    }
  }
  return -1;
}

TEST(CloexecTest, MetricsAndTensorBoardFiles) {
  const testing::ScopedTempDir tmp("r1kit_cloexec");
  const std::string dir = tmp.path().string();
  {
    auto w = MetricsWriter::open(dir + "/metrics.jsonl", dir + "/tb");
    ASSERT_TRUE(w.ok()) << w.status().message();
    int jsonl = fd_flags_of(dir + "/metrics.jsonl");
    int tb = fd_flags_of(dir + "/tb/events.out.tfevents");
    ASSERT_GE(jsonl, 0);
    ASSERT_GE(tb, 0);
    EXPECT_TRUE(jsonl & FD_CLOEXEC);
    EXPECT_TRUE(tb & FD_CLOEXEC);
  }
}

}  // namespace
}  // namespace r1kit
