// The `remote` reward: scores a group by calling a RewardService (proto/reward.proto)
// written in any language, e.g. reward/examples/remote_reward_server.py.
//
// Recipe entry (every key but name and weight is an argument, checked strictly):
//   reward:
//     - {name: remote, weight: 1.0, address: "127.0.0.1:50061", deadline_ms: 5000,
//        token_file: /etc/r1kit/reward.token, reward: exact_match,
//        tls: {ca_file: /etc/r1kit/ca.pem}}
//
// Follows the rollout client's conventions (rollout/grpc/grpc_source.h): a deadline on
// every call, the bearer token sent as the `authorization: Bearer <token>` metadata
// (docs/rewards.md, "In another language: a remote RewardService").
// Different on purpose:
// - A failed call never throws and never blocks past deadline_ms: a timeout, any
//   error status (UNAUTHENTICATED included), an unreachable server or a response with
//   the wrong number of scores marks the WHOLE batch "cannot judge" (NaN), logs a
//   warning, and counts every sample of it in the returned Scores::failures (which the
//   GRPO trainer sums into reward/remote_failures). Nothing is retried within the call:
//   the next batch simply tries again.
// - The bearer token never travels in plaintext off this host: a token with a
//   non-loopback address needs TLS (`tls.ca_file`, and `tls.cert_file`/`key_file` for
//   mutual TLS) or an explicit `insecure: true`; otherwise create() fails.
// - The server is not contacted at construction (a reward server may start after the
//   trainer); a missing address or an unreadable token file is an error at start.
// - Invalid UTF-8 in model output is replaced by U+FFFD (proto3 strings must be UTF-8).
//
// This is the only reward that links gRPC. It lives in its own library
// (r1kit_reward_grpc) so r1kit_reward stays free of gRPC/protobuf; a binary that wants
// it calls register_remote_reward() (the r1kit CLI does, at start). The SentencePiece
// rule of docs/design.md holds: this library never links sentencepiece.
//
// Thread-safety: score() may be called from several threads at once (gRPC stubs and
// channels are thread-safe; the count of failed calls, for the warnings, is atomic).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/tls_files.h"
#include "reward/reward.h"

namespace r1kit::reward {

struct RemoteRewardOptions {
  std::string address;         // host:port of the RewardService, e.g. "127.0.0.1:50061"
  int64_t deadline_ms = 5000;  // per Score call; past it the batch cannot be judged
  std::string token_file;      // file holding the bearer token; "" = send none
  std::string reward;          // ScoreRequest.reward: which of the server's rewards; "" = default
  TlsClientFiles tls;          // TLS to the server (CA bundle, client certificate); off
  bool insecure = false;       // allow sending the token in plaintext to another host
  void visit(ConfigVisitor& v) {
    v.field("address", address, "host:port of the RewardService (proto/reward.proto)");
    v.field("deadline_ms", deadline_ms, "deadline of one Score call, milliseconds",
            Range::between(1, 3'600'000));
    v.field("token_file", token_file,
            "file with the bearer token sent as `authorization: Bearer <token>`; empty = none");
    v.field("reward", reward, "which reward of a server that hosts several; empty = its default");
    v.section("tls", tls,
              "TLS to the server: ca_file (turns it on), cert_file/key_file (mutual TLS)");
    v.field("insecure", insecure,
            "send the bearer token in plaintext to a non-loopback address (no TLS)");
  }
};

class RemoteReward final : public Reward {
 public:
  // Reads the token and TLS files; InvalidArgument for an empty address or token file,
  // or a token bound for another host in plaintext without `insecure`; NotFound for an
  // unreadable file. Does not connect.
  static StatusOr<std::unique_ptr<RemoteReward>> create(const RemoteRewardOptions& opts);
  ~RemoteReward() override;

  Scores score(std::span<const Sample> group) const override;

 private:
  struct Impl;
  explicit RemoteReward(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  mutable std::atomic<int64_t> failed_calls_{0};  // for the warnings' "failed so far"
};

// Adds `remote` to `registry`. AlreadyExists if it is there already.
Status register_remote_reward(RewardRegistry& registry);

}  // namespace r1kit::reward
