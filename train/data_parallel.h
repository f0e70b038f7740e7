// The seam a data-parallel trainer fills (c10d): rank, world size, sum all-reduce. The
// default is one process: rank 0 of 1, and the all-reduce is the identity.
#pragma once

#include <torch/types.h>

namespace r1kit::train {

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  // In place: the sum over ranks (gradients, loss normalisers, metric sums).
  virtual void all_reduce_sum(torch::Tensor& /*t*/) {}
};

}  // namespace r1kit::train
