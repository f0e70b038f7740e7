// Helpers for tests that run the built binaries as a user would: where they are, and a
// shell command's exit code and output. The test binaries sit next to build/r1kit and
// the example reward plug-in.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

namespace r1kit::testing {

// The directory of the running test binary (build/).
inline std::filesystem::path binary_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}

inline std::string r1kit_binary() {
  return (binary_dir() / "r1kit").string();
}

// reward/examples/keyword_bonus_plugin.cpp as built.
inline std::string example_reward_plugin() {
  return (binary_dir() / "libr1kit_example_reward_plugin.so").string();
}

// Runs `cmd` in a shell; returns {exit code (128 + signal when killed), stdout, with
// stderr folded in when `with_stderr`}.
inline std::pair<int, std::string> run_command(const std::string& cmd, bool with_stderr) {
  std::string out;
  FILE* p = popen((cmd + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

}  // namespace r1kit::testing
