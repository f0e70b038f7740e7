// See execution.h.
#include "policy/execution.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "core/parallel.h"

namespace r1kit::policy {

ParallelPool& ExecutionContext::parallel_pool() const {
  return pool ? *pool : ParallelPool::global();
}

int ExecutionContext::expert_threads() const {
  return std::max(decode_threads, at::get_num_threads());
}

}  // namespace r1kit::policy
