// Conversions between rollout_source.h structs and proto/rollout.proto messages.
#include "rollout/grpc/convert.h"

namespace r1kit::rollout::grpc_internal {

void to_proto(const SamplingParams& s, pb::SamplingParams* out) {
  out->set_temperature(s.temperature);
  out->set_top_k(s.top_k);
  out->set_top_p(s.top_p);
  out->set_min_p(s.min_p);
  out->set_max_new_tokens(s.max_new_tokens);
  for (int64_t t : s.stop_token_ids) out->add_stop_token_ids(t);
  for (const auto& str : s.stop_strings) out->add_stop_strings(str);
  out->set_seed(s.seed);
}

SamplingParams from_proto(const pb::SamplingParams& s) {
  SamplingParams out;
  out.temperature = s.temperature();
  out.top_k = s.top_k();
  out.top_p = s.top_p();
  out.min_p = s.min_p();
  out.max_new_tokens = s.max_new_tokens();
  out.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  out.stop_strings.assign(s.stop_strings().begin(), s.stop_strings().end());
  out.seed = s.seed();
  return out;
}

void to_proto(const GenerateRequest& r, const std::vector<size_t>& positions,
              int64_t min_policy_version, pb::GenerateRequest* out) {
  for (size_t pos : positions) {
    const PromptInput& p = r.prompts[pos];
    pb::Prompt* q = out->add_prompts();
    q->mutable_token_ids()->Add(p.ids.begin(), p.ids.end());
    q->set_index(p.index);
  }
  out->set_group_size(r.group_size);
  to_proto(r.sampling, out->mutable_sampling());
  out->set_min_policy_version(min_policy_version);
  out->set_record_experts(r.record_experts);
  out->set_exact(r.exact == ExactMode::kBF16  ? pb::EXACT_MODE_BF16
                 : r.exact == ExactMode::kF32 ? pb::EXACT_MODE_F32
                                              : pb::EXACT_MODE_OFF);
  out->set_bf16_compute(r.bf16_compute);
}

GenerateRequest from_proto(const pb::GenerateRequest& r) {
  GenerateRequest out;
  out.prompts.reserve(r.prompts_size());
  for (const pb::Prompt& p : r.prompts()) {
    PromptInput in;
    in.ids.assign(p.token_ids().begin(), p.token_ids().end());
    in.index = p.index();
    out.prompts.push_back(std::move(in));
  }
  out.group_size = r.group_size();
  out.sampling = from_proto(r.sampling());
  out.record_experts = r.record_experts();
  // An unknown value (a newer client) is not taken for "off": the worker refuses it
  // (rollout/grpc/worker.cpp).
  out.exact = r.exact() == pb::EXACT_MODE_BF16  ? ExactMode::kBF16
              : r.exact() == pb::EXACT_MODE_F32 ? ExactMode::kF32
                                                : ExactMode::kOff;
  out.bf16_compute = r.bf16_compute();
  return out;
}

void to_proto(const ScoreRequest& r, int64_t min_policy_version, pb::ScoreRequest* out) {
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    pb::ScoreSequence* q = out->add_sequences();
    q->mutable_prompt_token_ids()->Add(r.prompts[i].begin(), r.prompts[i].end());
    if (i < r.completions.size())
      q->mutable_completion_token_ids()->Add(r.completions[i].begin(), r.completions[i].end());
  }
  out->set_min_policy_version(min_policy_version);
}

ScoreRequest from_proto(const pb::ScoreRequest& r) {
  ScoreRequest out;
  out.prompts.reserve(r.sequences_size());
  out.completions.reserve(r.sequences_size());
  for (const pb::ScoreSequence& q : r.sequences()) {
    out.prompts.emplace_back(q.prompt_token_ids().begin(), q.prompt_token_ids().end());
    out.completions.emplace_back(q.completion_token_ids().begin(), q.completion_token_ids().end());
  }
  return out;
}

void to_proto(const ScoreResult& r, pb::ScoreResponse* out) {
  for (const auto& row : r.logprobs)
    out->add_sequences()->mutable_logprobs()->Add(row.begin(), row.end());
  out->set_policy_version(r.policy_version);
}

ScoreResult from_proto(const pb::ScoreResponse& r) {
  ScoreResult out;
  out.logprobs.reserve(r.sequences_size());
  for (const pb::TokenLogProbs& row : r.sequences())
    out.logprobs.emplace_back(row.logprobs().begin(), row.logprobs().end());
  out.policy_version = r.policy_version();
  return out;
}

pb::FinishReason to_proto(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return pb::FINISH_REASON_STOP;
    case FinishReason::kLength: return pb::FINISH_REASON_LENGTH;
    case FinishReason::kAbort: return pb::FINISH_REASON_ABORT;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

FinishReason from_proto(pb::FinishReason r) {
  switch (r) {
    case pb::FINISH_REASON_STOP: return FinishReason::kStop;
    case pb::FINISH_REASON_LENGTH: return FinishReason::kLength;
    default: return FinishReason::kAbort;
  }
}

void to_proto(const RoutedExperts& r, pb::RoutedExperts* out) {
  out->set_layers(static_cast<int32_t>(r.layers));
  out->set_k(static_cast<int32_t>(r.k));
  out->mutable_ids()->Add(r.ids.begin(), r.ids.end());
}

RoutedExperts from_proto(const pb::RoutedExperts& r) {
  RoutedExperts out;
  out.layers = r.layers();
  out.k = r.k();
  out.ids.assign(r.ids().begin(), r.ids().end());
  return out;
}

void to_proto(const Group& g, pb::GroupResult* out) {
  out->set_prompt_index(g.prompt_index);
  if (g.prompt_experts.layers > 0) to_proto(g.prompt_experts, out->mutable_prompt_experts());
  for (const Completion& c : g.completions) {
    pb::Completion* o = out->add_completions();
    o->mutable_token_ids()->Add(c.token_ids.begin(), c.token_ids.end());
    o->mutable_logprobs()->Add(c.logprobs.begin(), c.logprobs.end());
    o->set_finish_reason(to_proto(c.finish_reason));
    o->set_policy_version(c.policy_version);
    if (c.routed_experts.layers > 0) to_proto(c.routed_experts, o->mutable_routed_experts());
  }
}

Group from_proto(const pb::GroupResult& g) {
  Group out;
  out.prompt_index = g.prompt_index();
  out.prompt_experts = from_proto(g.prompt_experts());
  out.completions.reserve(g.completions_size());
  for (const pb::Completion& c : g.completions()) {
    Completion o;
    o.token_ids.assign(c.token_ids().begin(), c.token_ids().end());
    o.logprobs.assign(c.logprobs().begin(), c.logprobs().end());
    o.finish_reason = from_proto(c.finish_reason());
    o.policy_version = c.policy_version();
    o.routed_experts = from_proto(c.routed_experts());
    out.completions.push_back(std::move(o));
  }
  return out;
}

StatusOr<pb::DType> to_proto_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return pb::DTYPE_F32;
    case torch::kHalf: return pb::DTYPE_F16;
    case torch::kBFloat16: return pb::DTYPE_BF16;
    case torch::kDouble: return pb::DTYPE_F64;
    case torch::kLong: return pb::DTYPE_I64;
    case torch::kInt: return pb::DTYPE_I32;
    case torch::kChar: return pb::DTYPE_I8;
    case torch::kByte: return pb::DTYPE_U8;
    case torch::kBool: return pb::DTYPE_BOOL;
    default: return InvalidArgument("dtype {} has no wire form", c10::toString(t));
  }
}

StatusOr<torch::ScalarType> from_proto_dtype(int d) {
  switch (d) {
    case pb::DTYPE_F32: return torch::kFloat;
    case pb::DTYPE_F16: return torch::kHalf;
    case pb::DTYPE_BF16: return torch::kBFloat16;
    case pb::DTYPE_F64: return torch::kDouble;
    case pb::DTYPE_I64: return torch::kLong;
    case pb::DTYPE_I32: return torch::kInt;
    case pb::DTYPE_I8: return torch::kChar;
    case pb::DTYPE_U8: return torch::kByte;
    case pb::DTYPE_BOOL: return torch::kBool;
    default: return InvalidArgument("dtype {}: not a known DType", d);
  }
}

grpc::Status to_grpc(const Status& s) {
  using G = grpc::StatusCode;
  G code = G::UNKNOWN;
  switch (s.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = G::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = G::NOT_FOUND; break;
    case StatusCode::kAlreadyExists: code = G::ALREADY_EXISTS; break;
    case StatusCode::kOutOfRange: code = G::OUT_OF_RANGE; break;
    case StatusCode::kDataLoss: code = G::DATA_LOSS; break;
    case StatusCode::kFailedPrecondition: code = G::FAILED_PRECONDITION; break;
    case StatusCode::kUnimplemented: code = G::UNIMPLEMENTED; break;
    case StatusCode::kResourceExhausted: code = G::RESOURCE_EXHAUSTED; break;
    case StatusCode::kDeadlineExceeded: code = G::DEADLINE_EXCEEDED; break;
    case StatusCode::kUnavailable: code = G::UNAVAILABLE; break;
    case StatusCode::kUnauthenticated: code = G::UNAUTHENTICATED; break;
    case StatusCode::kCancelled: code = G::CANCELLED; break;
    case StatusCode::kInternal: code = G::INTERNAL; break;
  }
  return grpc::Status(code, s.message());
}

Status from_grpc(const grpc::Status& s) {
  using G = grpc::StatusCode;
  StatusCode code = StatusCode::kInternal;
  switch (s.error_code()) {
    case G::OK: return OkStatus();
    case G::INVALID_ARGUMENT: code = StatusCode::kInvalidArgument; break;
    case G::NOT_FOUND: code = StatusCode::kNotFound; break;
    case G::ALREADY_EXISTS: code = StatusCode::kAlreadyExists; break;
    case G::OUT_OF_RANGE: code = StatusCode::kOutOfRange; break;
    case G::DATA_LOSS: code = StatusCode::kDataLoss; break;
    case G::FAILED_PRECONDITION: code = StatusCode::kFailedPrecondition; break;
    case G::UNIMPLEMENTED: code = StatusCode::kUnimplemented; break;
    case G::RESOURCE_EXHAUSTED: code = StatusCode::kResourceExhausted; break;
    case G::DEADLINE_EXCEEDED: code = StatusCode::kDeadlineExceeded; break;
    case G::UNAVAILABLE: code = StatusCode::kUnavailable; break;
    case G::UNAUTHENTICATED:
    case G::PERMISSION_DENIED: code = StatusCode::kUnauthenticated; break;
    case G::CANCELLED:
    case G::ABORTED: code = StatusCode::kCancelled; break;
    default: code = StatusCode::kInternal; break;
  }
  return Status(code, s.error_message());
}

}  // namespace r1kit::rollout::grpc_internal
