// TLS from the client side: the rollout pool verifies a worker against a CA bundle and
// presents a client certificate to a worker that requires one (mutual TLS); the `remote`
// reward does the same against a TLS RewardService and never sends its bearer token in
// plaintext to another host unless told `insecure: true`. Certificates are made per
// test process with the openssl CLI (a CA, a server certificate for 127.0.0.1, a client
// certificate, and a second CA that signed neither).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/tls_files.h"
#include "reward.grpc.pb.h"
#include "reward/grpc/remote.h"
#include "reward/reward.h"
#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"
#include "tests/rollout/grpc/fake_source.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;

// The test's certificates, in a per-process directory removed at exit.
class Certs {
 public:
  static const Certs& get() {
    static Certs c;
    return c;
  }
  bool ok = false;
  std::string dir;
  std::string path(const std::string& name) const { return dir + "/" + name; }
  std::string pem(const std::string& name) const { return *read_file(path(name)); }
  ~Certs() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

 private:
  Certs() {
    dir = fs::temp_directory_path() / ("r1kit_tls_test_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = "cd " + dir + " && exec >openssl.log 2>&1 && ";
    for (const char* ca : {"ca", "other_ca"}) {
      script +=
          fmt::format("openssl req -x509 {} -keyout {}.key -out {}.pem -days 2 -subj /CN={} && ",
                      ec, ca, ca, ca);
    }
    script +=
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' "
        ">server.ext && printf 'extendedKeyUsage=clientAuth\\n' >client.ext && ";
    // name, signing CA, extensions
    for (auto [name, ca, ext] :
         {std::tuple{"server", "ca", "server"}, std::tuple{"client", "ca", "client"},
          std::tuple{"stranger", "other_ca", "client"}}) {
      script += fmt::format(
          "openssl req {} -keyout {n}.key -out {n}.csr -subj /CN={n} && openssl x509 -req -in "
          "{n}.csr -CA {c}.pem -CAkey {c}.key -CAcreateserial -days 2 -out {n}.pem -extfile "
          "{e}.ext && ",
          ec, fmt::arg("n", name), fmt::arg("c", ca), fmt::arg("e", ext));
    }
    script += "true";
    ok = std::system(script.c_str()) == 0;
  }
};

// ---------------------------------------------------------------- rollout pool

rollout::GenerateRequest small_request() {
  rollout::GenerateRequest r;
  r.prompts.push_back({{1, 2, 5}, 100});
  r.group_size = 2;
  r.sampling.max_new_tokens = 3;
  r.sampling.seed = 7;
  return r;
}

struct TlsWorker {
  explicit TlsWorker(bool require_client_cert) {
    const Certs& c = Certs::get();
    rollout::WorkerOptions o;
    o.limits.vocab_size = rollout::testing::FakeSource::kVocab;
    o.token = "secret";
    o.tls_cert_pem = c.pem("server.pem");
    o.tls_key_pem = c.pem("server.key");
    if (require_client_cert) o.tls_client_ca_pem = c.pem("ca.pem");
    worker = std::make_unique<rollout::RolloutWorker>(fake, o);
    Status s = worker->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  ~TlsWorker() { worker->shutdown(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(worker->port()); }
  rollout::testing::FakeSource fake;
  std::unique_ptr<rollout::RolloutWorker> worker;
};

// Whether one generate() through a pool with these credentials succeeds.
bool generates(const TlsWorker& w, const std::string& ca, const std::string& cert = "",
               const std::string& key = "") {
  rollout::GrpcSourceOptions o;
  o.workers = {w.address()};
  o.token = "secret";
  o.tls_root_pem = ca;
  o.tls_cert_pem = cert;
  o.tls_key_pem = key;
  o.fail_fast = true;
  o.generate_timeout_s = 5;
  o.stall_timeout_s = 2;
  o.control_timeout_s = 2;
  auto pool = rollout::make_grpc_rollout_source(o);
  EXPECT_TRUE(pool.ok()) << pool.status().to_string();
  return pool.ok() && (*pool)->generate(small_request()).ok();
}

TEST(GrpcTls, WorkerIsVerifiedAgainstTheCaBundle) {
  const Certs& c = Certs::get();
  ASSERT_TRUE(c.ok) << "openssl failed; see " << c.path("openssl.log");
  TlsWorker w(false);
  EXPECT_TRUE(generates(w, c.pem("ca.pem")));
  EXPECT_FALSE(generates(w, c.pem("other_ca.pem")));  // a CA that did not sign it
  EXPECT_FALSE(generates(w, ""));                     // plaintext
}

TEST(GrpcTls, MutualTlsNeedsAClientCertificateFromTheCa) {
  const Certs& c = Certs::get();
  ASSERT_TRUE(c.ok) << "openssl failed; see " << c.path("openssl.log");
  TlsWorker w(true);
  EXPECT_TRUE(generates(w, c.pem("ca.pem"), c.pem("client.pem"), c.pem("client.key")));
  EXPECT_FALSE(generates(w, c.pem("ca.pem")));  // no client certificate
  EXPECT_FALSE(generates(w, c.pem("ca.pem"), c.pem("stranger.pem"), c.pem("stranger.key")));
}

TEST(GrpcTls, HalfAClientConfigurationIsAnError) {
  rollout::GrpcSourceOptions o;
  o.workers = {"127.0.0.1:1"};
  o.tls_root_pem = "ca";
  o.tls_cert_pem = "cert";  // no key
  EXPECT_EQ(rollout::make_grpc_rollout_source(o).status().code(), StatusCode::kInvalidArgument);
  o.tls_key_pem = "key";
  o.tls_root_pem = "";  // a client certificate without TLS
  EXPECT_EQ(rollout::make_grpc_rollout_source(o).status().code(), StatusCode::kInvalidArgument);
  TlsClientFiles f;
  f.cert_file = "client.pem";
  EXPECT_FALSE(f.validate().ok());
  f.key_file = "client.key";
  EXPECT_FALSE(f.validate().ok());  // no ca_file
  f.ca_file = "ca.pem";
  EXPECT_TRUE(f.validate().ok());
}

TEST(GrpcTls, LoopbackTargets) {
  for (const char* t : {"127.0.0.1:50061", "127.1.2.3:1", "localhost:80", "[::1]:5",
                        "dns:///localhost:9", "ipv4:127.0.0.1:9", "unix:/run/r.sock"}) {
    EXPECT_TRUE(is_loopback_target(t)) << t;
  }
  for (const char* t : {"10.0.0.1:50061", "example.com:443", "127.0.0.1.nip.io:80",
                        "[2001:db8::1]:5", "0.0.0.0:1", "dns:///reward.internal:9"}) {
    EXPECT_FALSE(is_loopback_target(t)) << t;
  }
}

// ---------------------------------------------------------------- remote reward

namespace pb = ::r1kit::reward::v1;

// Scores 1 per sample when the token is right, UNAUTHENTICATED otherwise.
class TokenService final : public pb::RewardService::Service {
  grpc::Status Score(grpc::ServerContext* ctx, const pb::ScoreRequest* req,
                     pb::ScoreResponse* resp) override {
    auto it = ctx->client_metadata().find("authorization");
    if (it == ctx->client_metadata().end() ||
        std::string(it->second.data(), it->second.size()) != "Bearer secret") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
    }
    for (int i = 0; i < req->samples_size(); ++i) resp->add_scores(1.0);
    return grpc::Status::OK;
  }
};

StatusOr<std::unique_ptr<reward::Reward>> make_remote(const nlohmann::json& args) {
  reward::RewardRegistry registry;
  RETURN_IF_ERROR(reward::register_remote_reward(registry));
  return registry.create("remote", args);
}

TEST(RemoteRewardTls, ScoresOverTlsWithTheTokenAndFailsWithoutIt) {
  const Certs& c = Certs::get();
  ASSERT_TRUE(c.ok) << "openssl failed; see " << c.path("openssl.log");
  TokenService service;
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({c.pem("server.key"), c.pem("server.pem")});
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  const std::string token = c.path("token");
  std::ofstream(token) << "secret\n";
  std::vector<reward::Sample> group(2);
  const nlohmann::json base = {{"address", "127.0.0.1:" + std::to_string(port)},
                               {"token_file", token},
                               {"deadline_ms", 3000}};
  nlohmann::json args = base;
  args["tls"] = {{"ca_file", c.path("ca.pem")}};
  auto r = make_remote(args);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)->score(group).values, (std::vector<double>{1.0, 1.0}));
  // Plaintext (allowed to loopback) cannot talk to a TLS server: cannot judge.
  auto plain = make_remote(base);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_TRUE(std::isnan((*plain)->score(group).values[0]));
  // A CA that did not sign the server's certificate: cannot judge.
  args["tls"] = {{"ca_file", c.path("other_ca.pem")}};
  auto wrong = make_remote(args);
  ASSERT_TRUE(wrong.ok()) << wrong.status().to_string();
  EXPECT_TRUE(std::isnan((*wrong)->score(group).values[0]));
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(RemoteRewardTls, TokenIsNeverSentInPlaintextToAnotherHost) {
  const Certs& c = Certs::get();
  ASSERT_TRUE(c.ok) << "openssl failed; see " << c.path("openssl.log");
  const std::string token = c.path("token2");
  std::ofstream(token) << "secret\n";
  nlohmann::json args = {{"address", "10.1.2.3:50061"}, {"token_file", token}};
  auto refused = make_remote(args);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("plaintext"), std::string::npos)
      << refused.status().message();
  args["insecure"] = true;
  EXPECT_TRUE(make_remote(args).ok());
  args.erase("insecure");
  args["tls"] = {{"ca_file", c.path("ca.pem")}};
  EXPECT_TRUE(make_remote(args).ok());
  // Without a token nothing secret travels: plaintext is allowed anywhere.
  EXPECT_TRUE(make_remote({{"address", "10.1.2.3:50061"}}).ok());
  // A missing CA file is an error naming the key.
  args["tls"] = {{"ca_file", c.path("missing.pem")}};
  auto missing = make_remote(args);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("ca_file"), std::string::npos)
      << missing.status().message();
}

}  // namespace
}  // namespace r1kit
