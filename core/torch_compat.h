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
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/version.h>

namespace r1kit::compat {

inline constexpr int kTorchVersion = TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR;

// Autocast of CPU ops to `dtype` (matmuls in bf16; parameters untouched) while alive.
// Autocast's cache of weight casts is off inside: a cast cached under NoGradGuard (pi_old,
// an evaluation) would be reused by a later forward with autograd and cut the weights'
// gradients, and one cached before an optimizer step would be stale after it. A forward
// uses each weight once, so the cache saves nothing there.
class CpuAutocastGuard {
 public:
  CpuAutocastGuard(bool on, at::ScalarType dtype = at::kBFloat16) : on_(on) {
    if (!on_) return;
    cache_was_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
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
    at::autocast::set_autocast_cache_enabled(cache_was_);
  }
  CpuAutocastGuard(const CpuAutocastGuard&) = delete;
  CpuAutocastGuard& operator=(const CpuAutocastGuard&) = delete;

 private:
  bool on_;
  bool cache_was_ = true;
};

// Whether CPU autocast is on in this thread (fp32-only kernels then step aside, so that a
// no-grad forward computes what the autocast forward with autograd does).
inline bool cpu_autocast_enabled() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

// The dtype CPU autocast casts to in this thread (bf16 unless set otherwise).
inline at::ScalarType cpu_autocast_dtype() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::get_autocast_dtype(at::kCPU);
#else
  return at::autocast::get_autocast_cpu_dtype();
#endif
}

// CPU autocast off while alive, inside a CpuAutocastGuard's scope: ops run in their
// inputs' dtypes (the fp32 output head and log-softmax of a bf16 training step).
class CpuAutocastOff {
 public:
  CpuAutocastOff() : guard_(c10::DispatchKey::AutocastCPU) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

}  // namespace r1kit::compat
