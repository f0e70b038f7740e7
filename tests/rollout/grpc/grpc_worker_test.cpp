// RolloutWorker through raw gRPC stubs: auth, request limits, atomic weight updates
// (bad checksum, corrupted bytes, missing tensor, aborted stream), health during an
// update, Info.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "core/crc32c.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rollout.grpc.pb.h"
#include "rollout/grpc/worker.h"
#include "tests/rollout/grpc/fake_source.h"

namespace r1kit::rollout {
namespace {

namespace rolloutpb = ::r1kit::rollout::v1;
using testing::FakeSource;

WorkerOptions worker_options(const std::string& token = "") {
  WorkerOptions o;
  o.token = token;
  o.limits.vocab_size = FakeSource::kVocab;
  o.limits.max_prompt_tokens = 16;
  o.limits.max_new_tokens = 32;
  o.limits.max_group_size = 8;
  o.limits.max_prompts = 4;
  o.model_config_json = R"({"vocab_size": 100})";
  o.prompt_format_json = R"({"chat_template": "plain", "prefill_think": false})";
  return o;
}

struct Client {
  explicit Client(int port, std::string token = "")
      : channel(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                    grpc::InsecureChannelCredentials())),
        stub(rolloutpb::Rollout::NewStub(channel)),
        health(grpc::health::v1::Health::NewStub(channel)),
        token(std::move(token)) {}

  void prepare(grpc::ClientContext* ctx) const {
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // Runs a Generate to the end; returns its status and the groups.
  grpc::Status generate(const rolloutpb::GenerateRequest& req,
                        std::vector<rolloutpb::GroupResult>* out = nullptr) {
    grpc::ClientContext ctx;
    prepare(&ctx);
    auto reader = stub->Generate(&ctx, req);
    rolloutpb::GroupResult g;
    while (reader->Read(&g))
      if (out) out->push_back(g);
    return reader->Finish();
  }

  grpc::Status update(const std::vector<rolloutpb::WeightChunk>& chunks, bool cancel_midway = false,
                      rolloutpb::UpdateWeightsResponse* resp_out = nullptr) {
    grpc::ClientContext ctx;
    prepare(&ctx);
    rolloutpb::UpdateWeightsResponse resp;
    auto writer = stub->UpdateWeights(&ctx, &resp);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (cancel_midway && i == chunks.size() / 2) {
        ctx.TryCancel();
        break;
      }
      if (!writer->Write(chunks[i])) break;
    }
    if (!cancel_midway) writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (resp_out) *resp_out = resp;
    return s;
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus check() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, {}, &resp);
    return s.ok() ? resp.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<rolloutpb::Rollout::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
  std::string token;
};

rolloutpb::GenerateRequest good_request() {
  rolloutpb::GenerateRequest r;
  for (int i = 0; i < 2; ++i) {
    rolloutpb::Prompt* p = r.add_prompts();
    p->add_token_ids(1 + i);
    p->add_token_ids(2);
    p->set_index(i);
  }
  r.set_group_size(2);
  rolloutpb::SamplingParams* s = r.mutable_sampling();
  s->set_temperature(1.0);
  s->set_top_p(1.0);
  s->set_max_new_tokens(4);
  s->set_seed(3);
  return r;
}

// Chunks of one tensor (float values), `chunk` bytes each, with its true checksum.
std::vector<rolloutpb::WeightChunk> chunks_of(const std::string& name, const torch::Tensor& t,
                                              int64_t version, int64_t count, size_t chunk = 16) {
  std::vector<rolloutpb::WeightChunk> out;
  const auto* base = static_cast<const char*>(t.data_ptr());
  const uint64_t total = t.nbytes();
  const uint32_t sum = crc32c(base, total);
  uint64_t off = 0;
  do {
    rolloutpb::WeightChunk c;
    c.set_name(name);
    c.set_dtype(rolloutpb::DTYPE_F32);
    for (int64_t d : t.sizes()) c.add_shape(d);
    c.set_offset(off);
    c.set_total_bytes(total);
    const uint64_t len = std::min<uint64_t>(chunk, total - off);
    c.set_data(base + off, len);
    c.set_checksum(sum);
    c.set_version(version);
    c.set_tensor_count(count);
    out.push_back(c);
    off += len;
  } while (off < total);
  return out;
}

std::vector<rolloutpb::WeightChunk> update_of(int64_t version, float value, int64_t count = 2) {
  std::vector<rolloutpb::WeightChunk> all;
  auto a = chunks_of("a.weight", torch::full({3, 4}, value), version, count);
  auto b = chunks_of("b.bias", torch::full({5}, value), version, count);
  all.insert(all.end(), a.begin(), a.end());
  all.insert(all.end(), b.begin(), b.end());
  return all;
}

class WorkerTest : public ::testing::Test {
 protected:
  void start(const std::string& token = "") {
    worker_ = std::make_unique<RolloutWorker>(fake_, worker_options(token));
    ASSERT_TRUE(worker_->start().ok());
    ASSERT_GT(worker_->port(), 0);
  }
  void TearDown() override {
    if (worker_) worker_->shutdown();
  }
  FakeSource fake_;
  std::unique_ptr<RolloutWorker> worker_;
};

TEST_F(WorkerTest, GenerateStreamsEveryGroupOfTheSource) {
  start();
  Client c(worker_->port());
  std::vector<rolloutpb::GroupResult> groups;
  ASSERT_TRUE(c.generate(good_request(), &groups).ok());
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& g : groups) {
    EXPECT_EQ(g.completions_size(), 2);
    EXPECT_EQ(g.completions(0).token_ids_size(), 4);
    EXPECT_EQ(g.completions(0).logprobs_size(), 4);
    EXPECT_EQ(g.completions(1).finish_reason(), rolloutpb::FINISH_REASON_STOP);
  }
}

TEST_F(WorkerTest, WrongOrMissingTokenIsUnauthenticated) {
  start("s3cret");
  for (const std::string& token : {std::string(), std::string("wrong"), std::string("s3cret!")}) {
    Client c(worker_->port(), token);
    EXPECT_EQ(c.generate(good_request()).error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    EXPECT_EQ(c.update(update_of(1, 1.0f)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext ctx;
    c.prepare(&ctx);
    rolloutpb::InfoResponse info;
    EXPECT_EQ(c.stub->Info(&ctx, {}, &info).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(fake_.updates(), 0);
  Client good(worker_->port(), "s3cret");
  EXPECT_TRUE(good.generate(good_request()).ok());
}

TEST_F(WorkerTest, RequestsOverTheLimitsAreInvalidArgument) {
  start();
  Client c(worker_->port());
  struct Case {
    const char* what;
    std::function<void(rolloutpb::GenerateRequest&)> edit;
  };
  const std::vector<Case> cases = {
      {"no prompts", [](auto& r) { r.clear_prompts(); }},
      {"too many prompts",
       [](auto& r) {
         for (int i = 0; i < 4; ++i) {
           auto* p = r.add_prompts();
           p->add_token_ids(1);
           p->set_index(10 + i);
         }
       }},
      {"prompt too long",
       [](auto& r) {
         for (int i = 0; i < 20; ++i) r.mutable_prompts(0)->add_token_ids(1);
       }},
      {"empty prompt", [](auto& r) { r.mutable_prompts(0)->clear_token_ids(); }},
      {"token id = V", [](auto& r) { r.mutable_prompts(1)->add_token_ids(FakeSource::kVocab); }},
      {"negative token id", [](auto& r) { r.mutable_prompts(1)->add_token_ids(-1); }},
      {"duplicate index", [](auto& r) { r.mutable_prompts(1)->set_index(0); }},
      {"group size 0", [](auto& r) { r.set_group_size(0); }},
      {"group size over", [](auto& r) { r.set_group_size(9); }},
      {"max_new_tokens over", [](auto& r) { r.mutable_sampling()->set_max_new_tokens(33); }},
      {"max_new_tokens 0", [](auto& r) { r.mutable_sampling()->set_max_new_tokens(0); }},
      {"top_p 0", [](auto& r) { r.mutable_sampling()->set_top_p(0); }},
      {"negative temperature", [](auto& r) { r.mutable_sampling()->set_temperature(-1); }},
      {"stop token outside V", [](auto& r) { r.mutable_sampling()->add_stop_token_ids(1000); }},
  };
  for (const Case& k : cases) {
    rolloutpb::GenerateRequest r = good_request();
    k.edit(r);
    grpc::Status s = c.generate(r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << k.what;
    EXPECT_FALSE(s.error_message().empty()) << k.what;
  }
  EXPECT_EQ(fake_.served(), 0);
  EXPECT_TRUE(c.generate(good_request()).ok());  // still serving
}

TEST_F(WorkerTest, OlderWeightsThanAskedForIsFailedPrecondition) {
  start();
  Client c(worker_->port());
  rolloutpb::GenerateRequest r = good_request();
  r.set_min_policy_version(5);
  EXPECT_EQ(c.generate(r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(WorkerTest, CompleteUpdateIsApplied) {
  start();
  Client c(worker_->port());
  rolloutpb::UpdateWeightsResponse resp;
  ASSERT_TRUE(c.update(update_of(7, 2.5f), false, &resp).ok());
  EXPECT_EQ(resp.version(), 7);
  EXPECT_EQ(resp.tensors(), 2);
  EXPECT_EQ(resp.bytes(), 4u * (12 + 5));
  EXPECT_EQ(fake_.policy_version(), 7);
  auto w = fake_.weights();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_TRUE(torch::equal(w["a.weight"], torch::full({3, 4}, 2.5f)));
  EXPECT_TRUE(torch::equal(w["b.bias"], torch::full({5}, 2.5f)));
  std::vector<rolloutpb::GroupResult> groups;
  ASSERT_TRUE(c.generate(good_request(), &groups).ok());
  EXPECT_EQ(groups[0].completions(0).policy_version(), 7);
}

TEST_F(WorkerTest, BadUpdatesChangeNothing) {
  start();
  Client c(worker_->port());
  ASSERT_TRUE(c.update(update_of(1, 1.0f)).ok());

  auto corrupt = update_of(2, 2.0f);
  (*corrupt[1].mutable_data())[0] ^= 1;  // one flipped bit
  EXPECT_EQ(c.update(corrupt).error_code(), grpc::StatusCode::DATA_LOSS);

  auto missing = update_of(2, 2.0f, /*count=*/3);  // says 3 tensors, sends 2
  EXPECT_EQ(c.update(missing).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto truncated = update_of(2, 2.0f);
  truncated.pop_back();  // the last chunk of b.bias never comes
  EXPECT_EQ(c.update(truncated).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto gap = update_of(2, 2.0f);
  gap.erase(gap.begin() + 1);  // a hole in a.weight
  EXPECT_EQ(c.update(gap).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto bad_shape = update_of(2, 2.0f);
  for (auto& ch : bad_shape)
    if (ch.name() == "a.weight") ch.set_total_bytes(ch.total_bytes() + 4);
  EXPECT_EQ(c.update(bad_shape).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_FALSE(c.update(update_of(2, 2.0f), /*cancel_midway=*/true).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the cancelled stream end

  fake_.require({{"a.weight", {3, 4}}, {"b.bias", {5}}, {"c", {1}}});  // the engine refuses
  EXPECT_EQ(c.update(update_of(2, 2.0f)).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(fake_.updates(), 1);
  EXPECT_EQ(fake_.policy_version(), 1);
  EXPECT_TRUE(torch::equal(fake_.weights()["a.weight"], torch::full({3, 4}, 1.0f)));
  EXPECT_TRUE(c.generate(good_request()).ok());  // still serving
}

TEST_F(WorkerTest, CorruptedBytesInALargeUpdateAreDataLoss) {
  start();
  Client c(worker_->port());
  ASSERT_TRUE(c.update(update_of(1, 1.0f)).ok());
  // A 2 MiB tensor in 512 KiB chunks, sent with its true checksum; then two bytes of
  // the third chunk swapped on the way (the checksum still that of the right bytes).
  auto big = chunks_of("a.weight", torch::arange(512 * 1024, torch::kFloat).reshape({1024, 512}), 2,
                       2, /*chunk=*/512 * 1024);
  ASSERT_EQ(big.size(), 4u);
  auto rest = chunks_of("b.bias", torch::full({5}, 2.0f), 2, 2);
  big.insert(big.end(), rest.begin(), rest.end());
  std::string& data = *big[2].mutable_data();
  std::swap(data[1000], data[1001]);
  ASSERT_NE(data[1000], data[1001]);
  fake_.require({{"a.weight", {1024, 512}}, {"b.bias", {5}}});
  const grpc::Status s = c.update(big);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_NE(s.error_message().find("'a.weight'"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("CRC-32C"), std::string::npos) << s.error_message();
  std::swap(data[1000], data[1001]);  // the same stream uncorrupted is taken
  ASSERT_TRUE(c.update(big).ok());
  EXPECT_EQ(fake_.policy_version(), 2);
}

TEST_F(WorkerTest, AChecksumWithHighBitsIsRefusedAsAnOlderProtocol) {
  start();
  Client c(worker_->port());
  auto old = update_of(1, 1.0f);
  for (auto& ch : old) ch.set_checksum(ch.checksum() | (uint64_t{0xcbf29ce4} << 32));
  const grpc::Status s = c.update(old);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("not a CRC-32C"), std::string::npos) << s.error_message();
  EXPECT_EQ(fake_.updates(), 0);
}

TEST_F(WorkerTest, HealthIsNotServingWhileWeightsLoad) {
  start();
  Client c(worker_->port());
  EXPECT_EQ(c.check(), grpc::health::v1::HealthCheckResponse::SERVING);
  fake_.hold_updates(true);
  std::thread updater([&] { EXPECT_TRUE(c.update(update_of(3, 3.0f)).ok()); });
  ASSERT_TRUE(fake_.wait_update_entered(std::chrono::seconds(5)));
  EXPECT_EQ(c.check(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  grpc::ClientContext ctx;
  c.prepare(&ctx);
  rolloutpb::InfoResponse info;
  ASSERT_TRUE(c.stub->Info(&ctx, {}, &info).ok());
  EXPECT_TRUE(info.updating_weights());
  fake_.hold_updates(false);
  updater.join();
  EXPECT_EQ(c.check(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(fake_.policy_version(), 3);
}

// A broken trainer's weights never reach the engine: a NaN anywhere, or a version older
// than the worker's, is refused and the served weights stay as they were.
TEST_F(WorkerTest, NonFiniteWeightsAndAnOlderVersionAreRefused) {
  start();
  Client c(worker_->port());
  ASSERT_TRUE(c.update(update_of(5, 1.0f)).ok());
  const grpc::Status nan = c.update(update_of(6, NAN));
  EXPECT_EQ(nan.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(nan.error_message().find("NaN"), std::string::npos) << nan.error_message();
  const grpc::Status older = c.update(update_of(4, 2.0f));
  EXPECT_EQ(older.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(older.error_message().find("older"), std::string::npos) << older.error_message();
  EXPECT_EQ(fake_.policy_version(), 5);
  EXPECT_TRUE(torch::equal(fake_.weights()["a.weight"], torch::full({3, 4}, 1.0f)));
  EXPECT_TRUE(c.update(update_of(5, 2.0f)).ok());  // the same version again is fine
}

TEST_F(WorkerTest, InfoReportsModelVersionAndLimits) {
  start();
  Client c(worker_->port());
  grpc::ClientContext ctx;
  c.prepare(&ctx);
  rolloutpb::InfoResponse info;
  ASSERT_TRUE(c.stub->Info(&ctx, {}, &info).ok());
  EXPECT_EQ(info.model_config_json(), R"({"vocab_size": 100})");
  EXPECT_EQ(info.prompt_format_json(), R"({"chat_template": "plain", "prefill_think": false})");
  EXPECT_EQ(info.policy_version(), 0);
  EXPECT_EQ(info.vocab_size(), FakeSource::kVocab);
  EXPECT_EQ(info.max_prompts(), 4);
  EXPECT_EQ(info.active_groups(), 0);
}

// An update stream held open without sending anything is cancelled after the idle
// timeout: the worker serves again, nothing is applied.
TEST(WorkerLimitsTest, AnIdleUpdateStreamIsCancelled) {
  FakeSource fake;
  WorkerOptions o = worker_options();
  o.update_idle_timeout_s = 0.3;
  RolloutWorker worker(fake, o);
  ASSERT_TRUE(worker.start().ok());
  Client c(worker.port());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  rolloutpb::UpdateWeightsResponse resp;
  auto writer = c.stub->UpdateWeights(&ctx, &resp);
  auto chunks = update_of(1, 1.0f);
  ASSERT_TRUE(writer->Write(chunks[0]));  // then nothing more, never WritesDone
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(c.check(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  const auto t0 = std::chrono::steady_clock::now();
  const grpc::Status s = writer->Finish();
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  for (int i = 0; i < 50 && c.check() != grpc::health::v1::HealthCheckResponse::SERVING; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(c.check(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(fake.updates(), 0);
  EXPECT_TRUE(c.update(update_of(1, 1.0f)).ok());  // the next update is taken
  worker.shutdown();
}

// A GenerateRequest of at least `bytes` serialised bytes: good_request() with its first
// prompt padded by token ids of -1 (ten bytes each as a varint).
rolloutpb::GenerateRequest request_of_bytes(size_t bytes) {
  rolloutpb::GenerateRequest r = good_request();
  r.mutable_prompts(0)->mutable_token_ids()->Resize(static_cast<int>(bytes / 10 + 1), -1);
  return r;
}

// With a token, the token is checked on the metadata, before the request is read: eight
// concurrent unauthenticated Generates of 3.9 MiB (under the cap on every message) and
// one of 8 MiB (over it) all get UNAUTHENTICATED, and none reaches the handler
// (WorkerStats::generate_requests stays 0; before the check moved into the credentials
// each 3.9 MiB body was read and parsed, ~8x its size, before the handler refused it).
// The health check still answers without a token, and an authenticated client is served.
TEST(WorkerAuthTest, UnauthenticatedBodiesAreRefusedBeforeTheyAreRead) {
  FakeSource fake;
  RolloutWorker worker(fake, worker_options("s3cret"));
  ASSERT_TRUE(worker.start().ok());
  const rolloutpb::GenerateRequest big = request_of_bytes((size_t{39} << 20) / 10);
  ASSERT_GT(big.ByteSizeLong(), size_t{3} << 20);
  ASSERT_LT(big.ByteSizeLong(), size_t{4} << 20);
  std::vector<grpc::StatusCode> codes(8, grpc::StatusCode::OK);
  {
    std::vector<std::thread> senders;
    for (size_t i = 0; i < codes.size(); ++i)
      senders.emplace_back([&, i] {
        Client c(worker.port(), i % 2 ? "wrong" : "");
        codes[i] = c.generate(big).error_code();
      });
    for (auto& t : senders) t.join();
  }
  for (grpc::StatusCode code : codes) EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status huge = Client(worker.port()).generate(request_of_bytes(size_t{8} << 20));
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::UNAUTHENTICATED) << huge.error_message();
  WorkerStats st = worker.stats();
  EXPECT_EQ(st.unauthenticated, 9);
  EXPECT_EQ(st.generate_requests, 0);
  EXPECT_EQ(st.generate_request_bytes, 0);
  EXPECT_EQ(fake.served(), 0);

  Client anyone(worker.port());
  EXPECT_EQ(anyone.check(), grpc::health::v1::HealthCheckResponse::SERVING);
  Client good(worker.port(), "s3cret");
  std::vector<rolloutpb::GroupResult> groups;
  ASSERT_TRUE(good.generate(good_request(), &groups).ok());
  EXPECT_EQ(groups.size(), 2u);
  st = worker.stats();
  EXPECT_EQ(st.unauthenticated, 9);
  EXPECT_EQ(st.generate_requests, 1);
  EXPECT_EQ(st.generate_request_bytes, static_cast<int64_t>(good_request().ByteSizeLong()));
  worker.shutdown();
}

// Per-method caps, for a client with the token (or a worker without one): a Generate
// over max_generate_request_bytes is refused (INVALID_ARGUMENT naming the limit) before
// it is parsed; one over the cap on every message (a weight chunk: 4 MiB + 64 KiB) is
// refused by gRPC (RESOURCE_EXHAUSTED) and never reaches the handler; a weight chunk of
// the full 4 MiB is still taken.
TEST(WorkerLimitsTest, MessageSizesAreCappedPerMethod) {
  FakeSource fake;
  WorkerOptions o = worker_options("s3cret");
  o.limits.max_generate_request_bytes = 64 << 10;
  RolloutWorker worker(fake, o);
  ASSERT_TRUE(worker.start().ok());
  Client c(worker.port(), "s3cret");
  const rolloutpb::GenerateRequest over = request_of_bytes(size_t{65} << 10);
  grpc::Status s = c.generate(over);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find(fmt::format("GenerateRequest: {} bytes, over the limit of 65536",
                                               over.ByteSizeLong())),
            std::string::npos)
      << s.error_message();
  WorkerStats st = worker.stats();
  EXPECT_EQ(st.generate_requests, 1);
  EXPECT_EQ(st.oversized_requests, 1);
  s = c.generate(request_of_bytes(size_t{6} << 20));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(worker.stats().generate_requests, 1);  // gRPC refused it; no handler ran
  EXPECT_EQ(fake.served(), 0);
  EXPECT_TRUE(c.generate(good_request()).ok());
  // A 4 MiB chunk (one tensor of 1M floats) passes the cap on every message.
  const torch::Tensor t = torch::full({1 << 20}, 0.5f);
  rolloutpb::UpdateWeightsResponse resp;
  auto chunks = chunks_of("a.weight", t, 1, 1, size_t{4} << 20);
  ASSERT_EQ(chunks.size(), 1u);
  s = c.update(chunks, false, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.bytes(), uint64_t{4} << 20);
  EXPECT_EQ(fake.updates(), 1);
  worker.shutdown();
}

TEST(WorkerStart, TakenPortIsAnError) {
  FakeSource a, b;
  RolloutWorker wa(a, worker_options());
  ASSERT_TRUE(wa.start().ok());
  WorkerOptions o = worker_options();
  o.port = wa.port();
  RolloutWorker wb(b, o);
  EXPECT_FALSE(wb.start().ok());
}

TEST(WorkerStart, HalfATlsConfigurationIsAnError) {
  FakeSource a;
  WorkerOptions o = worker_options();
  o.tls_cert_pem = "x";
  RolloutWorker w(a, o);
  EXPECT_EQ(w.start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace r1kit::rollout
