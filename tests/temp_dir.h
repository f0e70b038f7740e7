// A directory of a test's own under ::testing::TempDir(), removed with all it holds when
// the object goes, so that test runs leave nothing in /tmp; kept, with its path printed,
// when it goes while a failed test is still running, for a look at what the test wrote.
// A function-local static one holds what a process's tests share, until exit. The
// name carries the pid and a counter: ctest -j runs test processes side by side. Only the
// process that made it removes it, as a forked child's exit runs static destructors too.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace r1kit::testing {

class ScopedTempDir {
 public:
  explicit ScopedTempDir(std::string_view prefix = "r1kit_test") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::path(::testing::TempDir()) /
            (std::string(prefix) + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter.fetch_add(1)));
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // a crashed run's, with the same pid
    std::filesystem::create_directories(path_);
  }
  ~ScopedTempDir() {
    if (::getpid() != owner_) return;
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "kept for a look: %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside, as a string.
  std::string join(std::string_view name) const { return (path_ / name).string(); }
  // Writes `text` to the file `name` inside.
  void write(std::string_view name, std::string_view text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

 private:
  pid_t owner_ = ::getpid();
  std::filesystem::path path_;
};

}  // namespace r1kit::testing
