// The `remote` reward over proto/reward.proto; see remote.h.
#include "reward/grpc/remote.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>

#include "core/atomic_file.h"
#include "core/logging.h"
#include "reward.grpc.pb.h"
#include "rollout/grpc/channel_credentials.h"

namespace r1kit::reward {
namespace {

namespace pb = ::r1kit::reward::v1;

constexpr const char* kAuthKey = "authorization";
constexpr const char* kBearer = "Bearer ";
constexpr int kMaxMessageBytes = 256 << 20;  // a group of long completions fits

// Length of the valid UTF-8 sequence at s[i] (1-4), or 0 if it is not one (overlong
// forms, surrogates and code points past U+10FFFF are invalid, per RFC 3629).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

// `s` with every invalid byte replaced by U+FFFD.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace

struct RemoteReward::Impl {
  RemoteRewardOptions opts;
  std::string token;  // "" = none
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::RewardService::Stub> stub;
};

RemoteReward::RemoteReward(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteReward::~RemoteReward() = default;

StatusOr<std::unique_ptr<RemoteReward>> RemoteReward::create(const RemoteRewardOptions& opts) {
  if (opts.address.empty()) {
    return InvalidArgument("reward remote: address: required, host:port of the RewardService");
  }
  if (opts.address.find(':') == std::string::npos) {  // e.g. a bare port: DNS name, port 443
    return InvalidArgument(
        "reward remote: address: expected host:port (or a gRPC target such as unix:PATH), got "
        "'{}'",
        opts.address);
  }
  if (opts.deadline_ms < 1) return InvalidArgument("reward remote: deadline_ms: must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  if (!opts.token_file.empty()) {
    StatusOr<std::string> token = read_token_file(opts.token_file);
    if (!token.ok()) return token.status().with_context("reward remote: token_file");
    impl->token = std::move(*token);
  }
  StatusOr<TlsClientPem> tls = read_tls_client_files(opts.tls, "reward remote: tls");
  if (!tls.ok()) return tls.status();
  if (!impl->token.empty() && !tls->enabled() && !opts.insecure &&
      !is_loopback_target(opts.address)) {
    return InvalidArgument(
        "reward remote: the bearer token (token_file) would go in plaintext to {}; give "
        "tls.ca_file to use TLS, or insecure: true to send it anyway",
        opts.address);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // A server that comes back is found again within about a second (gRPC's default
  // reconnect backoff grows to 120 s, which would fail every batch meanwhile).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  impl->channel = grpc::CreateCustomChannel(opts.address, channel_credentials(*tls), args);
  impl->stub = pb::RewardService::NewStub(impl->channel);
  return std::unique_ptr<RemoteReward>(new RemoteReward(std::move(impl)));
}

Scores RemoteReward::score(std::span<const Sample> group) const {
  std::vector<double> out(group.size(), kNoScore);
  if (group.empty()) return out;
  const RemoteRewardOptions& o = impl_->opts;
  // Every sample of the batch is a failure: it stays kNoScore.
  auto fail = [&](const std::string& why) -> Scores {
    const int64_t n = failed_calls_.fetch_add(1) + 1;
    // A dead server fails every group: warn on the first few, then every 100th.
    if (n <= 3 || n % 100 == 0) {
      spdlog::warn("reward remote {}: {}; batch of {} marked cannot-judge ({} failed so far)",
                   o.address, why, group.size(), n);
    }
    return {std::vector<double>(group.size(), kNoScore), static_cast<int64_t>(group.size())};
  };
  try {
    pb::ScoreRequest req;
    req.set_reward(o.reward);
    for (const Sample& s : group) {
      pb::Sample* p = req.add_samples();
      p->set_prompt(valid_utf8(s.prompt));
      p->set_completion(valid_utf8(s.completion));
      p->mutable_completion_ids()->Add(s.completion_ids.begin(), s.completion_ids.end());
      p->set_metadata_json(
          s.metadata.is_object()
              ? s.metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              : std::string("{}"));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
    if (!impl_->token.empty()) ctx.AddMetadata(kAuthKey, std::string(kBearer) + impl_->token);
    pb::ScoreResponse resp;
    const grpc::Status st = impl_->stub->Score(&ctx, req, &resp);
    if (!st.ok()) {
      return fail(fmt::format("Score failed: {} (code {})", st.error_message(),
                              static_cast<int>(st.error_code())));
    }
    if (static_cast<size_t>(resp.scores_size()) != group.size()) {
      return fail(fmt::format("{} scores for {} samples", resp.scores_size(), group.size()));
    }
    for (size_t i = 0; i < group.size(); ++i) {
      const double x = resp.scores(static_cast<int>(i));
      out[i] = std::isfinite(x) ? x : kNoScore;
    }
    return out;
  } catch (const std::exception& e) {  // e.g. bad_alloc building the request
    return fail(fmt::format("exception: {}", e.what()));
  }
}

Status register_remote_reward(RewardRegistry& registry) {
  return registry.add(
      "remote",
      [](const nlohmann::json& args) -> StatusOr<std::unique_ptr<Reward>> {
        ASSIGN_OR_RETURN(RemoteRewardOptions o,
                         parse_reward_options<RemoteRewardOptions>("remote", args));
        ASSIGN_OR_RETURN(std::unique_ptr<RemoteReward> r, RemoteReward::create(o));
        return std::unique_ptr<Reward>(std::move(r));
      },
      "scores from a RewardService over gRPC (proto/reward.proto); failures cannot judge");
}

}  // namespace r1kit::reward
