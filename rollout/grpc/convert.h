// Internal to rollout/grpc: conversions between rollout_source.h structs and the
// generated proto/rollout.proto messages, dtype mapping, and Status <-> grpc::Status.
// Includes gRPC headers: never include it outside rollout/grpc/*.cpp.
#pragma once

#include <grpcpp/grpcpp.h>

#include "core/status.h"
#include "rollout.pb.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout::grpc_internal {

namespace pb = ::r1kit::rollout::v1;

void to_proto(const SamplingParams& s, pb::SamplingParams* out);
SamplingParams from_proto(const pb::SamplingParams& s);

// The request's sampling and group size, with the prompts at `positions` only.
void to_proto(const GenerateRequest& r, const std::vector<size_t>& positions,
              int64_t min_policy_version, pb::GenerateRequest* out);
GenerateRequest from_proto(const pb::GenerateRequest& r);

void to_proto(const RoutedExperts& r, pb::RoutedExperts* out);
RoutedExperts from_proto(const pb::RoutedExperts& r);
void to_proto(const Group& g, pb::GroupResult* out);
Group from_proto(const pb::GroupResult& g);

void to_proto(const ScoreRequest& r, int64_t min_policy_version, pb::ScoreRequest* out);
ScoreRequest from_proto(const pb::ScoreRequest& r);
void to_proto(const ScoreResult& r, pb::ScoreResponse* out);
ScoreResult from_proto(const pb::ScoreResponse& r);

pb::FinishReason to_proto(FinishReason r);
FinishReason from_proto(pb::FinishReason r);

// Tensor dtypes on the wire. InvalidArgument for a dtype the protocol lacks.
StatusOr<pb::DType> to_proto_dtype(torch::ScalarType t);
StatusOr<torch::ScalarType> from_proto_dtype(int d);

grpc::Status to_grpc(const Status& s);
Status from_grpc(const grpc::Status& s);

// Bearer-token metadata key and value prefix.
inline constexpr const char* kAuthKey = "authorization";
inline constexpr const char* kBearer = "Bearer ";

}  // namespace r1kit::rollout::grpc_internal
