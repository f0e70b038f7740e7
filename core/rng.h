// Seeding: one recipe seed, derived deterministically into every stream r1kit uses.
//
// derive_seed(seed, a, b, c) mixes with splitmix64, so (step, example, sample) triples
// give independent, reproducible streams whatever the batch composition.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace r1kit {

// splitmix64 finaliser: a bijective 64-bit mix.
uint64_t mix64(uint64_t x);
// Deterministic seed for a sub-stream, e.g. derive_seed(seed, {step, prompt, sample}).
uint64_t derive_seed(uint64_t seed, std::initializer_list<uint64_t> path);
// Seeds LibTorch's default CPU generator (and CUDA's when present) and std's rand.
void seed_everything(uint64_t seed);

}  // namespace r1kit
