// The `remote` reward (reward/grpc/remote.h) against a RewardService (proto/reward.proto).
//
// RemoteRewardTest: an in-process C++ server on 127.0.0.1 whose behaviour each test sets
// (token check, delay, error status, wrong score count): what is sent, what comes back,
// and every failure marking the whole batch "cannot judge" within the deadline.
// RemoteRewardPythonE2E (label integration): the Python example server
// reward/examples/remote_reward_server.py started with Debian's /usr/bin/python3; fails,
// never skips, when python3-grpcio or python3-grpc-tools is missing.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "reward.grpc.pb.h"
#include "reward/grpc/remote.h"
#include "reward/reward.h"
#include "tests/temp_dir.h"

namespace r1kit::reward {
namespace {

namespace rewardpb = ::r1kit::reward::v1;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Writes `text` to the file `name` of this process's temp dir (removed at exit).
std::string write_temp(const std::string& name, const std::string& text) {
  static const testing::ScopedTempDir dir("r1kit_remote_reward");
  dir.write(name, text);
  return dir.join(name);
}

std::vector<Sample> batch() {
  std::vector<Sample> g(3);
  g[0].prompt = "What is 1+2?";
  g[0].completion = "<think>1+2=3</think> <answer>3</answer>";
  g[0].completion_ids = {5, 6, 7};
  g[0].metadata = {{"answer", "3"}};
  g[1].prompt = g[0].prompt;
  g[1].completion = "<think>hm</think> <answer>4</answer>";
  g[1].completion_ids = {5, 8};
  g[1].metadata = {{"answer", "3"}};
  g[2].prompt = g[0].prompt;
  g[2].completion = "<answer>3</answer>";
  g[2].metadata = nlohmann::json::object();  // no answer: the server cannot judge
  return g;
}

// ---------------------------------------------------------------- in-process server

// What the fake server does; set by each test before scoring.
struct Behaviour {
  std::string token;                             // required bearer token; "" = none checked
  int delay_ms = 0;                              // sleep before answering
  grpc::StatusCode code = grpc::StatusCode::OK;  // non-OK: answer this error
  int extra_scores = 0;         // answer this many scores more (or fewer) than samples
  double fixed = std::nan("");  // unless NaN: every score is this

  static Behaviour with_token(std::string t) {
    Behaviour b;
    b.token = std::move(t);
    return b;
  }
  static Behaviour delay(int ms) {
    Behaviour b;
    b.delay_ms = ms;
    return b;
  }
  static Behaviour error(grpc::StatusCode c) {
    Behaviour b;
    b.code = c;
    return b;
  }
  static Behaviour extra(int n) {
    Behaviour b;
    b.extra_scores = n;
    return b;
  }
  static Behaviour constant(double x) {
    Behaviour b;
    b.fixed = x;
    return b;
  }
};

class FakeService final : public rewardpb::RewardService::Service {
 public:
  grpc::Status Score(grpc::ServerContext* ctx, const rewardpb::ScoreRequest* req,
                     rewardpb::ScoreResponse* resp) override {
    Behaviour b;
    {
      std::lock_guard<std::mutex> lock(mu);
      b = behaviour;
      last = *req;
      auto it = ctx->client_metadata().find("authorization");
      last_auth = it == ctx->client_metadata().end()
                      ? ""
                      : std::string(it->second.data(), it->second.size());
      ++calls;
    }
    if (!b.token.empty() && last_auth != "Bearer " + b.token)
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
    if (b.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(b.delay_ms));
    if (b.code != grpc::StatusCode::OK) return grpc::Status(b.code, "told to fail");
    const int n = req->samples_size() + b.extra_scores;
    for (int i = 0; i < n; ++i) {
      if (!std::isnan(b.fixed)) {
        resp->add_scores(b.fixed);
        continue;
      }
      // Score = the number of completion tokens, or NaN for a sample without answer.
      const rewardpb::Sample& s = req->samples(std::min(i, req->samples_size() - 1));
      const auto meta = nlohmann::json::parse(s.metadata_json());
      resp->add_scores(meta.contains("answer") ? s.completion_ids_size() : std::nan(""));
    }
    return grpc::Status::OK;
  }

  std::mutex mu;
  Behaviour behaviour;
  rewardpb::ScoreRequest last;
  std::string last_auth;
  int calls = 0;
};

struct FakeServer {
  FakeServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  }
  ~FakeServer() { server->Shutdown(std::chrono::system_clock::now()); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  void set(const Behaviour& b) {
    std::lock_guard<std::mutex> lock(service.mu);
    service.behaviour = b;
  }

  FakeService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

StatusOr<std::unique_ptr<Reward>> make_remote(const nlohmann::json& args) {
  RewardRegistry registry;
  register_builtin_rewards(registry);
  RETURN_IF_ERROR(register_remote_reward(registry));
  return registry.create("remote", args);
}

bool all_nan(const Scores& s) {
  const std::vector<double>& v = s.values;
  for (double x : v)
    if (!std::isnan(x)) return false;
  return !v.empty();
}

TEST(RemoteRewardTest, ScoresABatchFromTheRecipeList) {
  FakeServer server;
  const std::string token_file = write_temp("r1kit_remote_token", "  s3cret\n");
  server.set(Behaviour::with_token("s3cret"));
  RewardRegistry registry;
  register_builtin_rewards(registry);
  ASSERT_TRUE(register_remote_reward(registry).ok());
  EXPECT_FALSE(register_remote_reward(registry).ok());  // AlreadyExists
  auto specs = parse_reward_specs(fmt::format(
      "[{{name: remote, weight: 2.0, address: \"{}\", deadline_ms: 5000, token_file: {}, "
      "reward: lengths}}, {{name: format, weight: 1.0}}]",
      server.address(), token_file));
  ASSERT_TRUE(specs.ok()) << specs.status().to_string();
  auto combined = build_rewards(*specs, registry);
  ASSERT_TRUE(combined.ok()) << combined.status().to_string();
  const std::vector<Sample> g = batch();
  GroupScores s = combined->score(g);
  ASSERT_EQ(s.names, (std::vector<std::string>{"remote", "format"}));
  EXPECT_EQ(s.components[0][0], 3.0);
  EXPECT_EQ(s.components[0][1], 2.0);
  EXPECT_TRUE(std::isnan(s.components[0][2]));
  EXPECT_EQ(s.total[0], 2.0 * 3.0 + 1.0);
  EXPECT_EQ(s.total[1], 2.0 * 2.0 + 1.0);
  EXPECT_TRUE(std::isnan(s.total[2]));
  EXPECT_EQ(s.failures, 0);  // the server's NaN is "cannot judge", not a failure
  // What went over the wire.
  std::lock_guard<std::mutex> lock(server.service.mu);
  EXPECT_EQ(server.service.last_auth, "Bearer s3cret");
  const rewardpb::ScoreRequest& req = server.service.last;
  EXPECT_EQ(req.reward(), "lengths");
  ASSERT_EQ(req.samples_size(), 3);
  EXPECT_EQ(req.samples(0).prompt(), g[0].prompt);
  EXPECT_EQ(req.samples(0).completion(), g[0].completion);
  EXPECT_EQ(std::vector<int32_t>(req.samples(0).completion_ids().begin(),
                                 req.samples(0).completion_ids().end()),
            g[0].completion_ids);
  EXPECT_EQ(nlohmann::json::parse(req.samples(0).metadata_json()), g[0].metadata);
  EXPECT_EQ(req.samples(2).metadata_json(), "{}");
  fs::remove(token_file);
}

TEST(RemoteRewardTest, InvalidUtf8IsReplacedNotFatal) {
  FakeServer server;
  auto r = make_remote({{"address", server.address()}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::vector<Sample> g(1);
  g[0].completion = "ok \xff\xfe bad \xe2\x82 cut \xed\xa0\x80 surrogate \xf0\x9f\x98\x80 emoji";
  g[0].metadata = {{"answer", "\xc3\x28"}};
  Scores out = (*r)->score(g);
  EXPECT_EQ(out.values[0], 0.0);  // scored: the server parsed the request
  EXPECT_EQ(out.failures, 0);
  std::lock_guard<std::mutex> lock(server.service.mu);
  EXPECT_EQ(server.service.last.samples(0).completion(),
            "ok \xEF\xBF\xBD\xEF\xBF\xBD bad \xEF\xBF\xBD\xEF\xBF\xBD cut "
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD surrogate \xf0\x9f\x98\x80 emoji");
  EXPECT_TRUE(nlohmann::json::accept(server.service.last.samples(0).metadata_json()));
}

TEST(RemoteRewardTest, NonFiniteScoresAreCannotJudgeButNotFailures) {
  FakeServer server;
  server.set(Behaviour::constant(INFINITY));
  auto r = make_remote({{"address", server.address()}});
  ASSERT_TRUE(r.ok());
  Scores out = (*r)->score(batch());
  EXPECT_TRUE(all_nan(out));
  EXPECT_EQ(out.failures, 0);
}

// Every failure: the whole batch is NaN, each of its samples counted as a failure, back
// within the deadline.
TEST(RemoteRewardTest, FailuresMarkTheBatchCannotJudge) {
  FakeServer server;
  const std::string token_file = write_temp("r1kit_remote_token2", "right\n");
  struct Case {
    const char* what;
    Behaviour behaviour;
    bool send_token;
  };
  const std::vector<Case> cases = {
      {"wrong token", Behaviour::with_token("other"), true},
      {"no token", Behaviour::with_token("right"), false},
      {"error status", Behaviour::error(grpc::StatusCode::INTERNAL), true},
      {"invalid argument", Behaviour::error(grpc::StatusCode::INVALID_ARGUMENT), true},
      {"one score too many", Behaviour::extra(1), true},
      {"one score too few", Behaviour::extra(-1), true},
      {"slower than the deadline", Behaviour::delay(1500), true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    server.set(c.behaviour);
    nlohmann::json args = {{"address", server.address()}, {"deadline_ms", 300}};
    if (c.send_token) args["token_file"] = token_file;
    auto r = make_remote(args);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const auto t = Clock::now();
    Scores out = (*r)->score(batch());
    EXPECT_LT(seconds_since(t), 1.2);
    ASSERT_EQ(out.values.size(), 3u);
    EXPECT_TRUE(all_nan(out));
    EXPECT_EQ(out.failures, 3);
  }
  // The same reward scores again once the server behaves.
  server.set({});
  auto r = make_remote({{"address", server.address()}, {"deadline_ms", 2000}});
  ASSERT_TRUE(r.ok());
  Scores ok = (*r)->score(batch());
  EXPECT_EQ(ok.values[0], 3.0);
  EXPECT_EQ(ok.failures, 0);
  EXPECT_TRUE((*r)->score({}).values.empty());
  // Through a CombinedReward, as the GRPO trainer calls it, the failures come along.
  server.set(Behaviour::error(grpc::StatusCode::INTERNAL));
  auto failing = make_remote({{"address", server.address()}, {"deadline_ms", 2000}});
  ASSERT_TRUE(failing.ok());
  std::vector<CombinedReward::Component> parts;
  parts.push_back({"remote", 1.0, kRoleOther, std::move(*failing)});
  const CombinedReward combined(std::move(parts));
  EXPECT_EQ(combined.score(batch()).failures, 3);
  fs::remove(token_file);
}

TEST(RemoteRewardTest, DeadServerThenBack) {
  int port = 0;
  {
    FakeServer s;
    port = s.port;
  }  // shut down: nothing listens on `port` now
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto r = make_remote({{"address", address}, {"deadline_ms", 1000}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();  // no connection at construction
  const auto t = Clock::now();
  Scores dead = (*r)->score(batch());
  EXPECT_LT(seconds_since(t), 1.5);
  EXPECT_TRUE(all_nan(dead));
  EXPECT_EQ(dead.failures, 3);

  // A server that comes back on the same port is used again within a few batches.
  FakeService service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (bound != port) GTEST_SKIP() << "port " << port << " was taken meanwhile";
  double got = std::nan("");
  for (int attempt = 0; attempt < 20 && std::isnan(got); ++attempt) {
    got = (*r)->score(batch()).values[0];
    if (std::isnan(got)) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(got, 3.0);
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(RemoteRewardTest, BadArgumentsFailAtStart) {
  const std::string empty = write_temp("r1kit_remote_empty_token", " \n");
  struct Case {
    nlohmann::json args;
    const char* must_mention;
  };
  const std::vector<Case> cases = {
      {nlohmann::json::object(), "address"},
      {{{"address", "127.0.0.1:1"}, {"deadline_ms", 0}}, "deadline_ms"},
      {{{"address", "127.0.0.1:1"}, {"timeout", 5}}, "timeout"},
      {{{"address", "127.0.0.1:1"}, {"token_file", "/nonexistent/token"}}, "/nonexistent/token"},
      {{{"address", "127.0.0.1:1"}, {"token_file", empty}}, "empty"},
      {{{"address", 50061}}, "address"},  // a bare port is no host:port
      {{{"address", "localhost"}}, "host:port"},
  };
  for (const Case& c : cases) {
    auto r = make_remote(c.args);
    ASSERT_FALSE(r.ok()) << c.args.dump();
    EXPECT_NE(r.status().to_string().find(c.must_mention), std::string::npos)
        << r.status().to_string();
  }
  fs::remove(empty);
}

// ---------------------------------------------------------------- Python example server

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-grpcio

std::string source_dir() {
  return fs::weakly_canonical(fs::path(R1KIT_TESTDATA) / ".." / "..").string();
}

// The example server as a child process; stopped (SIGTERM, then SIGKILL) on destruction.
class PythonServer {
 public:
  // Starts the server with `args` on a free port and waits until it serves.
  static std::unique_ptr<PythonServer> start(std::vector<std::string> args) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return nullptr;
    const std::string script = source_dir() + "/reward/examples/remote_reward_server.py";
    const std::string proto = source_dir() + "/proto/reward.proto";
    std::vector<std::string> argv = {kPython, script, "--port", "0", "--proto", proto};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(pipefd[1], STDOUT_FILENO);
      ::close(pipefd[0]);
      ::close(pipefd[1]);
      ::execv(kPython, cargv.data());
      ::_exit(127);
    }
    ::close(pipefd[1]);
    auto s = std::unique_ptr<PythonServer>(new PythonServer(pid, pipefd[0]));
    // Read "listening on PORT" (stub generation and start take a second or two).
    std::string line;
    const auto t = Clock::now();
    while (seconds_since(t) < 60 && line.find('\n') == std::string::npos) {
      pollfd p{pipefd[0], POLLIN, 0};
      if (::poll(&p, 1, 500) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(pipefd[0], buf, sizeof(buf));
      if (n <= 0) break;  // the server exited
      line.append(buf, static_cast<size_t>(n));
    }
    if (std::sscanf(line.c_str(), "listening on %d", &s->port_) != 1) return nullptr;
    return s;
  }
  ~PythonServer() { stop(); }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  PythonServer(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_ = -1;
  int fd_ = -1;
  int port_ = 0;
};

class RemoteRewardPythonE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string check =
        std::string(kPython) + " -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1";
    if (std::system(check.c_str()) != 0) {
      FAIL() << kPython
             << " cannot import grpc and grpc_tools: install Debian's python3-grpcio and "
                "python3-grpc-tools (scripts/setup.sh) to run the remote-reward end-to-end "
                "tests";
    }
    token_file_ = write_temp("r1kit_e2e_token", "e2e-token\n");
    wrong_token_file_ = write_temp("r1kit_e2e_wrong_token", "not-it\n");
  }
  void TearDown() override {
    if (!token_file_.empty()) fs::remove(token_file_);
    if (!wrong_token_file_.empty()) fs::remove(wrong_token_file_);
  }
  std::unique_ptr<Reward> remote(const std::string& address, int deadline_ms,
                                 const std::string& token_file) {
    auto r = make_remote(
        {{"address", address}, {"deadline_ms", deadline_ms}, {"token_file", token_file}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(*r) : nullptr;
  }
  std::string token_file_, wrong_token_file_;
};

TEST_F(RemoteRewardPythonE2E, ExactMatchTokenAndDeadServer) {
  auto server = PythonServer::start({"--token-file", token_file_});
  ASSERT_NE(server, nullptr) << "the Python example server did not start";
  const std::string address = server->address();

  // Scores: right, wrong, no answer (cannot judge).
  auto r = remote(address, 5000, token_file_);
  ASSERT_NE(r, nullptr);
  Scores out = r->score(batch());
  ASSERT_EQ(out.values.size(), 3u);
  EXPECT_EQ(out.values[0], 1.0);
  EXPECT_EQ(out.values[1], 0.0);
  EXPECT_TRUE(std::isnan(out.values[2]));
  EXPECT_EQ(out.failures, 0);
  // Through the recipe list, with the `length` reward of the same server.
  RewardRegistry registry;
  register_builtin_rewards(registry);
  ASSERT_TRUE(register_remote_reward(registry).ok());
  auto specs = parse_reward_specs(fmt::format(
      "[{{name: remote, weight: 0.5, address: \"{}\", deadline_ms: 5000, token_file: {}, "
      "reward: length}}]",
      address, token_file_));
  ASSERT_TRUE(specs.ok());
  auto combined = build_rewards(*specs, registry);
  ASSERT_TRUE(combined.ok()) << combined.status().to_string();
  GroupScores gs = combined->score(batch());
  EXPECT_EQ(gs.total, (std::vector<double>{1.5, 1.0, 0.0}));
  EXPECT_EQ(gs.failures, 0);

  // Wrong token: UNAUTHENTICATED -> the batch cannot be judged.
  auto wrong = remote(address, 5000, wrong_token_file_);
  ASSERT_NE(wrong, nullptr);
  Scores unauthenticated = wrong->score(batch());
  EXPECT_TRUE(all_nan(unauthenticated));
  EXPECT_EQ(unauthenticated.failures, 3);

  // Dead server: cannot judge, within the deadline.
  server->stop();
  const auto t = Clock::now();
  Scores dead = r->score(batch());
  EXPECT_LT(seconds_since(t), 5.0 + 0.5);
  EXPECT_TRUE(all_nan(dead));
  EXPECT_EQ(dead.failures, 3);
  auto fresh = remote(address, 1000, token_file_);  // never connected
  ASSERT_NE(fresh, nullptr);
  const auto t2 = Clock::now();
  EXPECT_TRUE(all_nan(fresh->score(batch())));
  EXPECT_LT(seconds_since(t2), 1.5);
}

TEST_F(RemoteRewardPythonE2E, SlowServerTimesOut) {
  auto server = PythonServer::start({"--token-file", token_file_, "--delay-ms", "3000"});
  ASSERT_NE(server, nullptr) << "the Python example server did not start";
  auto r = remote(server->address(), 500, token_file_);
  ASSERT_NE(r, nullptr);
  const auto t = Clock::now();
  Scores late = r->score(batch());
  EXPECT_LT(seconds_since(t), 1.5);
  EXPECT_TRUE(all_nan(late));
  EXPECT_EQ(late.failures, 3);
  // A long enough deadline gets the scores from the same slow server.
  auto patient = remote(server->address(), 10000, token_file_);
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->score(batch()).values[0], 1.0);
}

}  // namespace
}  // namespace r1kit::reward
