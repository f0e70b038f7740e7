// Tests of data::write_tasks_jsonl (`r1kit task generate`): one record a line, problem i
// of the seeded stream on line i, the task section's keys reaching every generator.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "data/task_source.h"
#include "tests/data/task_test_util.h"

namespace r1kit::data {
namespace {

TEST(TaskJsonlTest, WriteTasksJsonl) {
  for (const char* task : {"countdown", "arithmetic", "knights_knaves"}) {
    SCOPED_TRACE(task);
    TaskSection sec;
    sec.name = task;
    std::ostringstream a, b;
    ASSERT_TRUE(write_tasks_jsonl(sec, 7, 25, /*with_traces=*/true, a).ok());
    ASSERT_TRUE(write_tasks_jsonl(sec, 7, 25, /*with_traces=*/false, b).ok());
    std::istringstream la(a.str()), lb(b.str());
    int lines = 0;
    for (std::string x, y; std::getline(la, x) && std::getline(lb, y); ++lines) {
      nlohmann::json with = nlohmann::json::parse(x), without = nlohmann::json::parse(y);
      EXPECT_TRUE(with.contains("answer"));
      EXPECT_FALSE(with["trace"].get<std::string>().empty());
      EXPECT_FALSE(without.contains("trace"));
      with.erase("trace");
      EXPECT_EQ(with, without);
      // Line i is problem i of the seeded stream.
      EXPECT_EQ(without, task_record(sec.task().generate(7, lines), false));
      if (std::string(task) == "countdown") {
        EXPECT_TRUE(without.contains("numbers"));
        EXPECT_TRUE(without.contains("target"));
      }
    }
    EXPECT_EQ(lines, 25);
  }
  TaskSection cd;
  cd.name = "countdown";
  std::ostringstream o1, o2;
  ASSERT_TRUE(write_tasks_jsonl(cd, 1, 5, false, o1).ok());
  ASSERT_TRUE(write_tasks_jsonl(cd, 2, 5, false, o2).ok());
  EXPECT_NE(o1.str(), o2.str());
  std::ostringstream none;
  EXPECT_TRUE(write_tasks_jsonl(cd, 1, 0, false, none).ok());
  EXPECT_TRUE(none.str().empty());
  EXPECT_FALSE(write_tasks_jsonl(cd, 1, -1, false, none).ok());
  TaskSection unknown;
  unknown.name = "sudoku";
  EXPECT_FALSE(write_tasks_jsonl(unknown, 1, 3, false, none).ok());
  // A file task is not a generator.
  EXPECT_FALSE(
      write_tasks_jsonl(task_section("{name: jsonl, path: x.jsonl}"), 1, 3, false, none).ok());
}

// --format sft: {"prompt", "response"} lines, the response the one SFT learns from the
// same problem (TaskSource::sft_response), prefill_think included.
TEST(TaskJsonlTest, WriteTasksJsonlSftFormat) {
  for (bool prefill : {false, true}) {
    TaskSection sec;
    sec.name = "arithmetic";
    sec.prefill_think = prefill;
    std::ostringstream out;
    ASSERT_TRUE(write_tasks_jsonl(sec, 3, 4, false, out, TaskFileFormat::kSft).ok());
    std::istringstream lines(out.str());
    int i = 0;
    for (std::string line; std::getline(lines, line); ++i) {
      const TaskSample s = sec.task().generate(3, i);
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(j,
                (nlohmann::json{{"prompt", s.question}, {"response", sft_response(s, prefill)}}));
      EXPECT_EQ(j["response"].get<std::string>().rfind("<think>", 0) == 0, !prefill) << line;
      EXPECT_NE(j["response"].get<std::string>().find("</answer>"), std::string::npos);
    }
    EXPECT_EQ(i, 4);
  }
}

// `r1kit task generate --task-arg`: the `task:` section's difficulty keys reach every
// generator; a default section gives exactly the default-difficulty file.
TEST(TaskJsonlTest, WriteTasksJsonlWithTaskSection) {
  auto lines_of = [](const TaskSection& t, int64_t n) {
    std::ostringstream out;
    EXPECT_TRUE(write_tasks_jsonl(t, 11, n, /*with_traces=*/true, out).ok()) << t.name;
    std::vector<nlohmann::json> v;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
    EXPECT_EQ(static_cast<int64_t>(v.size()), n) << t.name;
    return v;
  };
  TaskSection arith = task_section("{max_a: 9, max_b: 3, max_c: 5}");
  int64_t max_a_seen = 0;
  for (const auto& rec : lines_of(arith, 300)) {
    int a = -1, b = -1, c = -1;
    ASSERT_EQ(
        std::sscanf(rec["prompt"].get<std::string>().c_str(), "What is %d*%d+%d?", &a, &b, &c), 3)
        << rec.dump();
    EXPECT_TRUE(a >= 2 && a <= 9 && b >= 2 && b <= 3 && c >= 0 && c <= 5) << rec.dump();
    EXPECT_EQ(rec["answer"], std::to_string(a * b + c));
    max_a_seen = std::max<int64_t>(max_a_seen, a);
  }
  EXPECT_EQ(max_a_seen, 9);  // the range is used, not just bounded
  ASSERT_TRUE(apply_task_args(arith, {"trace=columns", "max_a=99"}).ok());
  const auto columns = lines_of(arith, 5);
  ASSERT_TRUE(apply_task_args(arith, {"trace=direct"}).ok());
  const auto direct = lines_of(arith, 5);
  EXPECT_EQ(columns[0]["prompt"], direct[0]["prompt"]);
  EXPECT_NE(columns[0]["trace"], direct[0]["trace"]);

  TaskSection cd =
      task_section("{name: countdown, min_numbers: 5, max_numbers: 5, max_number: 20}");
  for (const auto& rec : lines_of(cd, 50)) {
    ASSERT_EQ(rec["numbers"].size(), 5u) << rec.dump();
    for (const auto& x : rec["numbers"]) EXPECT_LE(x.get<int64_t>(), 20) << rec.dump();
  }

  TaskSection kk = task_section("{name: knights_knaves, min_people: 2, max_people: 2}");
  for (const auto& rec : lines_of(kk, 20)) EXPECT_EQ(rec["names"].size(), 2u) << rec.dump();

  // Cross-field checks of the section: min > max names both keys.
  Status bad = apply_task_args(cd, {"min_numbers=6"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("min_numbers"), std::string::npos) << bad.to_string();
  EXPECT_NE(bad.message().find("max_numbers"), std::string::npos) << bad.to_string();
}

}  // namespace
}  // namespace r1kit::data
