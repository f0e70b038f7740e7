// Keeping freed heap memory in the process.
//
// LibTorch on the CPU has no caching allocator: every tensor is a malloc, and glibc
// serves large ones (over 128 KiB to 32 MiB, adaptively) with a fresh mmap that it
// unmaps again on free. A training step of the `small` preset allocates and frees
// gigabytes of activations and gradients, so the kernel zero-fills every one of those
// pages on first touch, again each step. On virtual machines where a page fault is dear
// (a paravirtualised guest) that was a visible share of a profiled training step, and
// keeping the memory made the step faster in most alternating A/B pairs (the figures
// are in bench/RESULTS.md).
#pragma once

namespace r1kit {

// From now on glibc serves every allocation from its heap (no per-block mmap) and never
// returns freed memory to the kernel, so the next step reuses pages that are already
// mapped. The process keeps its peak heap size until it exits. Idempotent; a no-op on a
// C library other than glibc. Called at start-up by the `r1kit` binary and the benches;
// R1KIT_RELEASE_MEMORY=1 in the environment skips it. Returns whether it took effect.
bool retain_freed_memory();

}  // namespace r1kit
