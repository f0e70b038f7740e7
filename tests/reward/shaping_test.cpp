// Tests of the shaping rewards (overlong, cosine, Kimi length, repetition, language
// consistency) with hand-computed values, and of code_execution and its sandbox.
#include "reward/shaping.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "reward/code_execution.h"
#include "reward/reward.h"

namespace r1kit::reward {
namespace {

Sample with_len(size_t tokens, std::string completion = "x", nlohmann::json meta = {}) {
  Sample s;
  s.completion = std::move(completion);
  s.completion_ids.assign(tokens, 7);
  s.metadata = meta.is_null() ? nlohmann::json::object() : std::move(meta);
  return s;
}

TEST(OverlongTest, DapoEq13) {
  OverlongOptions o;
  o.max_length = 100;
  o.cache_length = 20;
  OverlongReward r(o);
  std::vector<Sample> g = {with_len(80), with_len(90), with_len(100), with_len(101),
                           with_len(0, "")};
  // 80 <= 100-20 -> 0; 90: (80-90)/20 = -0.5; 100: (80-100)/20 = -1; 101 > 100 -> -1.
  EXPECT_EQ(r.score(g).values, (std::vector<double>{0.0, -0.5, -1.0, -1.0, 0.0}));
  Sample no_ids;
  no_ids.completion = "text without ids";
  EXPECT_TRUE(std::isnan(r.score(std::span<const Sample>(&no_ids, 1)).values[0]));
}

TEST(CosineTest, ClampedAndBands) {
  auto r = RewardRegistry::global().create("cosine_length", {{"max_length", 100}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  nlohmann::json gold = {{"answer", "4"}};
  const std::string right = "<answer>4</answer>", wrong = "<answer>5</answer>";
  std::vector<Sample> g = {with_len(0, right, gold),    with_len(50, right, gold),
                           with_len(100, right, gold),  with_len(1000, right, gold),
                           with_len(0, wrong, gold),    with_len(50, wrong, gold),
                           with_len(1000, wrong, gold), with_len(10, right)};
  std::vector<double> s = (*r)->score(g).values;
  // correct: 0.5 + 0.25 (1 + cos(pi p)): p=0.5 -> 0.75, p=1 -> 0.5, p=10 clamped -> 0.5.
  EXPECT_TRUE(std::isnan(s[0]));  // text without token ids: length unknown
  EXPECT_NEAR(s[1], 0.75, 1e-12);
  EXPECT_NEAR(s[2], 0.5, 1e-12);
  EXPECT_NEAR(s[3], 0.5, 1e-12);  // open-r1 does not clamp: it would rise again
  // wrong: -0.5 + 0.5 (-1 - -0.5)(1 + cos(pi p)): p=0.5 -> -0.75, p=10 clamped -> -0.5.
  EXPECT_TRUE(std::isnan(s[4]));
  EXPECT_NEAR(s[5], -0.75, 1e-12);
  EXPECT_NEAR(s[6], -0.5, 1e-12);
  EXPECT_TRUE(std::isnan(s[7]));  // no gold: cannot judge
  auto bad = RewardRegistry::global().create("cosine_length", {{"correctness", "nope"}});
  EXPECT_FALSE(bad.ok());
  auto self = RewardRegistry::global().create("cosine_length", {{"correctness", "cosine_length"}});
  EXPECT_FALSE(self.ok());
  auto inner = RewardRegistry::global().create("cosine_length",
                                               {{"correctness_args", {{"gold_key", "solution"}}}});
  EXPECT_TRUE(inner.ok()) << inner.status().to_string();
}

TEST(KimiTest, PerGroup) {
  auto r = RewardRegistry::global().create("kimi_length", nlohmann::json::object());
  ASSERT_TRUE(r.ok());
  nlohmann::json gold = {{"answer", "4"}};
  const std::string right = "<answer>4</answer>", wrong = "<answer>5</answer>";
  std::vector<Sample> g = {with_len(10, right, gold), with_len(20, right, gold),
                           with_len(30, wrong, gold), with_len(15, wrong, gold)};
  // min 10, max 30: lambda = 0.5 - (L-10)/20 -> 0.5, 0, -0.5, 0.25.
  // correct -> lambda: 0.5, 0; wrong -> min(0, lambda): -0.5, 0.
  EXPECT_EQ((*r)->score(g).values, (std::vector<double>{0.5, 0.0, -0.5, 0.0}));
  std::vector<Sample> same = {with_len(10, right, gold), with_len(10, wrong, gold)};
  EXPECT_EQ((*r)->score(same).values, (std::vector<double>{0.0, 0.0}));
}

// A correctness reward that fails to score its first sample (as a dead remote server
// would) and calls the others correct.
class ShapingTestFailingCorrectness final : public Reward {
 public:
  Scores score(std::span<const Sample> g) const override {
    Scores s(std::vector<double>(g.size(), 1.0));
    if (!g.empty()) {
      s.values[0] = kNoScore;
      s.failures = 1;
    }
    return s;
  }
};

TEST(LengthRewardsTest, PassOnTheFailuresOfTheirCorrectnessReward) {
  std::vector<Sample> g = {with_len(10), with_len(20), with_len(30)};
  CosineLengthReward cosine(CosineOptions{}, std::make_unique<ShapingTestFailingCorrectness>());
  KimiLengthReward kimi(KimiLengthOptions{}, std::make_unique<ShapingTestFailingCorrectness>());
  for (const Reward* r : {static_cast<const Reward*>(&cosine), static_cast<const Reward*>(&kimi)}) {
    Scores s = r->score(g);
    ASSERT_EQ(s.values.size(), 3u);
    EXPECT_TRUE(std::isnan(s.values[0]));
    EXPECT_FALSE(std::isnan(s.values[1]));
    EXPECT_EQ(s.failures, 1);
  }
  // A sample that cannot be judged (no token ids) is not a failure.
  Sample no_ids;
  no_ids.completion = "text without ids";
  auto math = RewardRegistry::global().create("cosine_length", nlohmann::json::object());
  ASSERT_TRUE(math.ok());
  Scores s = (*math)->score(std::span<const Sample>(&no_ids, 1));
  EXPECT_TRUE(std::isnan(s.values[0]));
  EXPECT_EQ(s.failures, 0);
}

TEST(RepetitionTest, HandComputed) {
  RepetitionReward r{RepetitionOptions{}};
  // "a b c a b c": 3-grams abc bca cab abc -> 3 unique of 4: (1 - 3/4) * -1 = -0.25.
  EXPECT_DOUBLE_EQ(r.score_one("a b c a b c"), -0.25);
  EXPECT_DOUBLE_EQ(r.score_one("A b C a B c"), -0.25);  // lower-cased
  EXPECT_DOUBLE_EQ(r.score_one("a b c d e"), 0.0);
  EXPECT_DOUBLE_EQ(r.score_one("a b"), 0.0);  // fewer than n words
  EXPECT_DOUBLE_EQ(r.score_one(""), 0.0);
  // 1000 x "go": 998 trigrams, 1 unique: (1 - 1/998) * -1.
  std::string rep;
  for (int i = 0; i < 1000; ++i) rep += "go ";
  EXPECT_NEAR(r.score_one(rep), -(1.0 - 1.0 / 998.0), 1e-12);
  // CJK: each ideograph is a word. "我我我我" -> 2 trigrams, 1 unique: -0.5.
  EXPECT_DOUBLE_EQ(r.score_one("我我我我"), -0.5);
}

TEST(LanguageConsistencyTest, Shares) {
  LanguageConsistencyReward en{LanguageConsistencyOptions{}};
  // CoT words: "the", "answer", "是", "4"(skipped: no letters) -> 2 of 3 latin.
  EXPECT_NEAR(en.score_one("<think>the answer 是 4</think><answer>4</answer>"), 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(en.score_one("<think>all english words</think>"), 1.0);
  EXPECT_DOUBLE_EQ(en.score_one("<think>123 456</think>"), 0.0);  // no words
  LanguageConsistencyOptions zh;
  zh.script = "han";
  LanguageConsistencyReward han(zh);
  // "答案是 four": 答 案 是 are Han words, "four" is not: 3 / 4.
  EXPECT_DOUBLE_EQ(han.score_one("<think>答案是 four</think>"), 0.75);
  // Invalid UTF-8 does not crash.
  EXPECT_GE(en.score_one(std::string("<think>\xff\xfe abc \xc3</think>")), 0.0);
}

// ---------------------------------------------------------------- code execution

CodeExecutionOptions fast_opts() {
  CodeExecutionOptions o;
  o.timeout_s = 2.0;
  o.cpu_s = 2;
  return o;
}

std::string fenced(const std::string& code) {
  return "Here:\n```python\n" + code + "```\n";
}

TEST(CodeExecutionTest, ExtractAndCompare) {
  EXPECT_EQ(last_python_block("```python\na=1\n```\ntext\n```py\nb=2\n```"), "b=2\n");
  EXPECT_EQ(last_python_block("```cpp\nint x;\n```"), "");
  EXPECT_EQ(last_python_block("```python\nunclosed"), "");
  EXPECT_TRUE(outputs_match("1\n2\n", "1\n2"));
  EXPECT_TRUE(outputs_match(" 1 \n2\n\n", "1\n2\n"));
  EXPECT_FALSE(outputs_match("1\n", "1\n2\n"));        // a missing line fails (open-r1 zip)
  EXPECT_FALSE(outputs_match("1\n2\n3\n", "1\n2\n"));  // an extra line fails
  EXPECT_FALSE(outputs_match("", "1"));
}

TEST(CodeExecutionTest, ScoresFractionOfTests) {
  CodeExecutionReward r(fast_opts());
  Sample s;
  s.completion = fenced("a, b = map(int, input().split())\nprint(a + b)\n");
  s.metadata = {{"tests",
                 {{{"input", "1 2\n"}, {"output", "3\n"}},
                  {{"input", "5 5\n"}, {"output", "10\n"}},
                  {{"input", "1 1\n"}, {"output", "3\n"}}}}};  // deliberately wrong
  EXPECT_NEAR(r.score_one(s), 2.0 / 3.0, 1e-12);
  s.completion = "no code here";
  EXPECT_EQ(r.score_one(s), 0.0);
  s.metadata = nlohmann::json::object();
  EXPECT_TRUE(std::isnan(r.score_one(s)));
  // A non-zero exit fails the test even with the right output; the exit code the code
  // chooses never turns into "cannot judge".
  s.completion = fenced("print(3)\nimport sys\nsys.exit(125)\n");
  s.metadata = {{"inputs", {""}}, {"outputs", {"3"}}};
  EXPECT_EQ(r.score_one(s), 0.0);
}

// Runs `code` once and returns its stdout (or "TIMEOUT"/"KILLED").
std::string run(const std::string& code, CodeExecutionOptions o = fast_opts()) {
  RunResult r = run_python_sandboxed(code, "", o);
  EXPECT_TRUE(r.started) << r.error;
  EXPECT_EQ(r.error, "");
  if (r.timed_out) return "TIMEOUT";
  if (r.signal != 0) return "KILLED";
  return r.stdout_text;
}

TEST(SandboxTest, EscapesAreContained) {
  std::cerr << "sandbox mode: " << sandbox_mode() << "\n";
  // Network: a listening socket on the host's loopback is not reachable.
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(srv, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(srv, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  std::string net =
      run(fmt::format("import socket\n"
                      "try:\n"
                      "    socket.create_connection(('127.0.0.1', {}), timeout=1)\n"
                      "    print('connected')\n"
                      "except OSError:\n"
                      "    print('blocked')\n",
                      port));
  close(srv);
  if (sandbox_mode().rfind("rlimits + seccomp only", 0) == 0) {
    GTEST_SKIP() << "no sandbox on this machine: " << sandbox_mode();
  }
  EXPECT_EQ(net, "blocked\n");

  // Endless loop: killed at the wall-clock deadline.
  CodeExecutionOptions quick = fast_opts();
  quick.timeout_s = 0.5;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run("while True:\n    pass\n", quick), "TIMEOUT");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 1.5);

  // Memory hog: the address-space limit stops it.
  std::string mem =
      run("try:\n"
          "    x = bytearray(2 * 1024 ** 3)\n"
          "    print('allocated')\n"
          "except MemoryError:\n"
          "    print('limited')\n");
  EXPECT_EQ(mem, "limited\n");

  // Fork bomb: the process limit stops it, and nothing survives the run.
  std::string bomb =
      run("import os\n"
          "n = 0\n"
          "try:\n"
          "    for i in range(200):\n"
          "        if os.fork() == 0:\n"
          "            import time; time.sleep(30); os._exit(0)\n"
          "        n += 1\n"
          "except OSError:\n"
          "    pass\n"
          "print('forked', 'many' if n >= 100 else 'few')\n");
  EXPECT_EQ(bomb, "forked few\n");

  // Writing outside the work directory fails; inside it works; the directory is gone.
  std::string files =
      run("import os\n"
          "try:\n"
          "    open('/etc/r1kit_sandbox_probe', 'w').write('x')\n"
          "    print('escaped')\n"
          "except OSError:\n"
          "    print('denied')\n"
          "open('local.txt', 'w').write('ok')\n"
          "print(os.getcwd())\n");
  ASSERT_EQ(files.substr(0, 7), "denied\n");
  std::string cwd = files.substr(7);
  while (!cwd.empty() && cwd.back() == '\n') cwd.pop_back();
  // Its own tmpfs on /tmp with namespaces; a host directory, removed, with Landlock.
  if (cwd != "/tmp") {
    EXPECT_EQ(cwd.rfind("/tmp/r1kit_code_", 0), 0u) << cwd;
    EXPECT_FALSE(std::filesystem::exists(cwd));
  }
  EXPECT_FALSE(std::filesystem::exists("/etc/r1kit_sandbox_probe"));

  // A huge file: RLIMIT_FSIZE stops it.
  std::string big =
      run("try:\n"
          "    open('big', 'wb').write(b'x' * (64 * 1024 * 1024))\n"
          "    print('wrote')\n"
          "except OSError:\n"
          "    print('limited')\n");
  EXPECT_TRUE(big == "limited\n" || big == "KILLED") << big;  // SIGXFSZ when not caught
}

TEST(SandboxTest, ThreadSafeAndFlood) {
  // Output flood: stopped at the limit, not buffered without end.
  CodeExecutionOptions o = fast_opts();
  o.max_output_kb = 64;
  RunResult r = run_python_sandboxed("while True:\n    print('x' * 1000)\n", "", o);
  EXPECT_TRUE(r.output_limit);
  // Concurrent runs keep their own stdin/stdout.
  CodeExecutionReward reward(fast_opts());
  std::vector<std::thread> threads;
  std::vector<double> results(4, -1);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Sample s;
      s.completion = fenced("print(int(input()) * 2)\n");
      s.metadata = {
          {"tests",
           {{{"input", std::to_string(t) + "\n"}, {"output", std::to_string(2 * t) + "\n"}}}}};
      results[t] = reward.score_one(s);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(results, (std::vector<double>{1.0, 1.0, 1.0, 1.0}));
}

}  // namespace
}  // namespace r1kit::reward
