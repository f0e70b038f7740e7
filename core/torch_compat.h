// LibTorch version differences, in one place (the build must also work against a newer
// LibTorch 2.x given by -DCMAKE_PREFIX_PATH; docs/design.md, "Build").
//
// r1kit is developed against Debian 12's LibTorch 1.13. APIs that changed since are
// wrapped here; code elsewhere calls these instead of the versioned spellings.
// - CPU autocast: 1.13 has at::autocast::set_cpu_enabled / set_autocast_cpu_dtype;
//   2.4 deprecated them for the device-generic set_autocast_enabled(device_type, ...)
//   and set_autocast_dtype(device_type, ...).
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace r1kit::compat {

inline constexpr int kTorchVersion = TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR;

// Autocast of CPU ops to `dtype` (matmuls in bf16; parameters untouched) while alive.
class CpuAutocastGuard {
 public:
  CpuAutocastGuard(bool on, at::ScalarType dtype = at::kBFloat16) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCPU, dtype);
    at::autocast::set_autocast_enabled(at::kCPU, true);
#else
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
#endif
  }
  ~CpuAutocastGuard() {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCPU, false);
#else
    at::autocast::set_cpu_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  CpuAutocastGuard(const CpuAutocastGuard&) = delete;
  CpuAutocastGuard& operator=(const CpuAutocastGuard&) = delete;

 private:
  bool on_;
};

}  // namespace r1kit::compat
