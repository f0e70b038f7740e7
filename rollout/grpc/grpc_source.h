// GrpcRolloutSource: a RolloutSource over a pool of `r1kit rollout-worker` processes
// (proto/rollout.proto). Trainers include this header only; it has no gRPC headers.
//
// generate(): the prompts are cut into batches of whole groups; each batch goes to the
// live worker with the fewest groups in flight from this pool. Every call has a
// deadline, and a call whose worker sends no group for `stall_timeout_s` is cancelled.
// When a call fails (the worker died, stalled, or restarted with older weights), the
// groups it had not delivered are put back and re-sent to other workers, with the
// same prompt indices and seed (so the same tokens come back); groups it had
// delivered are kept. The result is complete and in request order, or an error once
// a group failed `max_attempts` times or no worker is left before the deadline. A
// failed worker is probed again (grpc.health.v1 Check, then Info) after
// `retry_after_s` and used again when SERVING with current weights.
// Non-retryable answers (INVALID_ARGUMENT, UNAUTHENTICATED, ...) fail generate() at
// once.
//
// update_weights(): streams every tensor, in chunks of at most 4 MiB with a CRC-32C
// checksum (crc32c.h), to every worker in parallel, and returns once all have applied it;
// generate() and update_weights() exclude each other, so an update completes before
// the next rollout. A worker that fails the update is marked stale: it is not used
// until a later update reaches it (each Generate carries min_policy_version). The
// update fails only when no worker took it.
//
// score(): the sequences are cut into batches of at most the workers' max_prompts, each
// sent as one Score call (deadline stall_timeout_s) to the next worker in turn; a call
// that fails for a reason another worker may not share (unreachable, stale weights, a
// deadline) is tried on the next worker, each once. INVALID_ARGUMENT and
// UNAUTHENTICATED fail at once.
//
// on_group is called on the thread that called generate(), never concurrently.
// Thread-safety: every method may be called from any thread (one at a time inside).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout {

struct GrpcSourceOptions {
  std::vector<std::string> workers;  // "host:port" of each worker
  std::string token;                 // bearer token sent with every RPC; empty = none
  // PEM root certificate(s) to verify TLS workers with; empty = plaintext channels.
  std::string tls_root_pem;
  // PEM client certificate chain and key for workers that require one (mutual TLS);
  // both or neither, and only with tls_root_pem.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // Deadline of a whole generate() (every call and retry within it). Seconds.
  double generate_timeout_s = 3600;
  // A Generate call that delivers no group for this long is cancelled and its groups
  // re-sent elsewhere. Must exceed the time one group takes. Seconds.
  double stall_timeout_s = 300;
  // Deadline of Info and health-check calls. Seconds.
  double control_timeout_s = 5;
  // Deadline of one worker's whole weight update. Seconds.
  double update_timeout_s = 600;
  // A failed worker is health-checked again after this long. Seconds.
  double retry_after_s = 2;
  // Calls one group may take before generate() gives up on it.
  int max_attempts = 3;
  // One-shot clients (`r1kit generate --worker`): generate() fails with UNAVAILABLE as
  // soon as no worker is live and none is being probed, instead of waiting
  // stall_timeout_s for one to come (back) up, as a trainer does.
  bool fail_fast = false;
  // Groups per Generate call: at most this many (0 = no cap); batches are otherwise
  // sized so that every live worker gets a share.
  int64_t max_groups_per_call = 64;
  // Generate calls in flight per worker (the worker queues them).
  int max_calls_per_worker = 2;
  // Bytes of tensor data per UpdateWeights chunk; at most 4 MiB.
  int64_t chunk_bytes = int64_t{4} << 20;
  // false: update_weights sends nothing and only records the version that Generate
  // calls require (min_policy_version), for a data-parallel rank other than 0 whose rank
  // 0 pushes the weights to the same workers (docs/distributed.md).
  bool push_weights = true;
  // Between equally loaded workers, the first from this index on (mod the live count)
  // gets the next batch: data-parallel ranks start on different workers.
  int64_t first_worker = 0;
};

// Checks the options and connects (lazily: no worker needs to be up yet). The
// starting policy version is the highest that a reachable worker reports (0 if none).
StatusOr<std::unique_ptr<RolloutSource>> make_grpc_rollout_source(const GrpcSourceOptions& options);

}  // namespace r1kit::rollout
