// The `nano` preset initialised from `seed`: the real model behind a worker in the gRPC
// tests (fast: a few tokens take milliseconds).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "policy/model.h"

namespace r1kit::rollout {

inline policy::Transformer nano_model(uint64_t seed) {
  auto args = policy::preset("nano");
  EXPECT_TRUE(args.ok());
  policy::Transformer m(*args);
  m->init_weights(seed);
  return m;
}

}  // namespace r1kit::rollout
