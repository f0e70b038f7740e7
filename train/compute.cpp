#include "train/compute.h"

#include <fstream>

namespace r1kit::train {

bool has_native_bf16(std::string_view cpu_flags) {
  // Whole words only: "avx512_bf16" must not match inside a longer flag.
  size_t pos = 0;
  while (pos < cpu_flags.size()) {
    const size_t end = std::min(cpu_flags.find_first_of(" \t\n", pos), cpu_flags.size());
    const std::string_view flag = cpu_flags.substr(pos, end - pos);
    if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    pos = end + 1;
  }
  return false;
}

const std::string& this_cpu_flags() {
  static const std::string flags = [] {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("flags", 0) != 0) continue;
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 1);
    }
    return std::string();
  }();
  return flags;
}

policy::Precision resolve_compute(policy::Compute compute, std::string_view cpu_flags) {
  switch (compute) {
    case policy::Compute::kF32: return policy::Precision::kF32;
    case policy::Compute::kBf16: return policy::Precision::kBf16;
    case policy::Compute::kAuto: break;
  }
  return has_native_bf16(cpu_flags) ? policy::Precision::kBf16 : policy::Precision::kF32;
}

std::string describe_compute(policy::Compute compute, std::string_view cpu_flags) {
  std::string s(
      enum_name<policy::Precision>(resolve_compute(compute, cpu_flags), policy::kPrecisionNames));
  return compute == policy::Compute::kAuto ? s + " (auto)" : s;
}

}  // namespace r1kit::train
