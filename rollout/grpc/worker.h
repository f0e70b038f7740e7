// RolloutWorker: serves any RolloutSource over gRPC (proto/rollout.proto): Generate,
// UpdateWeights, Info, and the standard grpc.health.v1 Health service. This is what
// `r1kit rollout-worker` runs around the in-process engine; tests run it around fakes.
//
// Design (gRPC's callback API, as in its route_guide example): reactions never block. A
// Generate is checked (token, limits) on the gRPC thread, then queued for one of
// `engine_threads` engine threads, which call RolloutSource::generate; every finished
// group is handed back to the stream's reactor and written as soon as the previous write
// is done. An UpdateWeights stream is read as raw messages: each chunk's data is copied
// once, from gRPC's buffers straight into its staging tensor, and checksummed (CRC-32C)
// as it is copied, on the gRPC thread (at most 4 MiB); once the stream ended, a control
// thread verifies coverage and checksums and calls RolloutSource::update_weights, which
// the source makes atomic with respect to generation. Health is NOT_SERVING from the
// first chunk of an update until it is applied or dropped, and after shutdown() starts.
//
// Security: binds 127.0.0.1 unless told otherwise; with a token, every Rollout RPC
// needs `authorization: Bearer <token>` (compared in constant time), else
// UNAUTHENTICATED. The token is checked by gRPC on the call's metadata, before the
// request message is read (an auth metadata processor on the server credentials), so an
// unauthenticated caller costs no body buffer, no parse and no handler. TLS when a
// certificate and key are given, mutual TLS (a client certificate required) with a
// client CA. The health service answers without a token (it reveals only SERVING /
// NOT_SERVING). Message sizes are capped per method: a Generate request at
// WorkerLimits::max_generate_request_bytes, a weight chunk at 4 MiB of data plus 64 KiB.
//
// This header includes no gRPC headers (the implementation is behind a pointer).
// Thread-safety: start() and shutdown() from one thread; the other methods from any.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout {

// What a worker accepts; a request over a limit gets INVALID_ARGUMENT naming it.
// 0 = unchecked (the source still validates what it cannot do).
struct WorkerLimits {
  int64_t vocab_size = 0;            // V: token ids must be in [0, V)
  int64_t max_prompt_tokens = 8192;  // tokens per prompt
  int64_t max_new_tokens = 8192;     // SamplingParams::max_new_tokens
  int64_t max_group_size = 256;      // GenerateRequest::group_size
  int64_t max_prompts = 4096;        // prompts per request
  int64_t max_stop_strings = 64;     // stop strings per request
  // Bytes of one whole weight update (guards the staging memory). 0 = unchecked.
  int64_t max_update_bytes = int64_t{256} << 30;
  // Bytes of one serialised GenerateRequest; a longer one gets INVALID_ARGUMENT before it
  // is parsed (parsing multiplies it: a 1-byte token id becomes 8 bytes, twice). 2 MiB
  // holds a GrpcRolloutSource call at its default max_groups_per_call (64 prompts) of
  // 8192 tokens each with 3-byte token ids (any V < 2^21), plus sampling settings.
  // 0 = only the cap on every message (a weight chunk: 4 MiB of data plus 64 KiB).
  int64_t max_generate_request_bytes = int64_t{2} << 20;
};

// What a worker refused and read since start(): for monitoring, and for the tests that
// show an unauthenticated request is refused before its body is read.
struct WorkerStats {
  int64_t unauthenticated = 0;         // calls refused by the token check (on metadata)
  int64_t generate_requests = 0;       // Generate requests that reached the handler
  int64_t generate_request_bytes = 0;  // their serialised bytes. Bytes.
  int64_t oversized_requests = 0;      // of those, refused over max_generate_request_bytes
};

struct WorkerOptions {
  // Address to listen on. The loopback default keeps the worker private to the host;
  // 0.0.0.0 exposes it to the network (use a token, and TLS, then).
  std::string bind = "127.0.0.1";
  int port = 0;  // 0 = any free port (see RolloutWorker::port)
  // Bearer token every Rollout RPC must carry. Empty = no authentication.
  std::string token;
  // PEM certificate chain and private key: both set = TLS, both empty = plaintext.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // PEM CA bundle for mutual TLS: every client must present a certificate that chains
  // to it (the handshake fails otherwise). Empty = no client certificate asked for.
  std::string tls_client_ca_pem;
  WorkerLimits limits;
  // The model's config.json text, returned by Info.
  std::string model_config_json;
  // The model's recorded prompt format as JSON (data/prompt_format.h), returned by Info;
  // "" when it has none.
  std::string prompt_format_json;
  // Threads calling RolloutSource::generate. The in-process engine serialises
  // generate() anyway, so 1 unless the source runs requests in parallel.
  int engine_threads = 1;
  // Called (from any thread) to end a running generate() early: on shutdown(), and
  // when the only stream the running generate() serves is cancelled. Optional
  // (LocalRolloutSource::abort); without it a cancelled generation runs to its end
  // and its groups are dropped.
  std::function<void()> abort_generation;
  // An UpdateWeights stream that receives nothing for this long is cancelled (nothing
  // applied; the worker serves again). 0 = never.
  double update_idle_timeout_s = 60;
};

class RolloutWorker {
 public:
  // `source` must outlive the worker.
  RolloutWorker(RolloutSource& source, WorkerOptions options);
  ~RolloutWorker();  // shutdown() if running
  RolloutWorker(const RolloutWorker&) = delete;
  RolloutWorker& operator=(const RolloutWorker&) = delete;

  // Binds and starts serving. Unavailable when the address cannot be bound,
  // InvalidArgument for half a TLS configuration.
  Status start();
  // The bound port (after start()): the one asked for, or the one gRPC picked for 0.
  int port() const;
  // "bind:port".
  std::string address() const;
  // Counters since start(); safe from any thread.
  WorkerStats stats() const;

  // Stops accepting RPCs, cancels the running ones (their clients see CANCELLED or
  // UNAVAILABLE), aborts generation when an abort hook was given, and waits for the
  // engine threads. Idempotent.
  void shutdown();
  // Blocks until shutdown() was called (from another thread or a signal handler
  // thread).
  void wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace r1kit::rollout
