// Tests of the jsonl task (data/tasks/jsonl.cpp) through the task registry and
// TaskSource: every shape datasets are downloaded in (question/answer, GSM8K, MATH,
// messages), every field option, every error message (file:line and the field), skipping
// bad lines, the recipe checks of the field options, and a conversation feeding SFT.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/task_source.h"
#include "tests/data/task_test_util.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

// Writes `lines` (one a line, as given) to a file of this process's temp dir, removed at
// exit; returns its path.
std::string jt_write(const std::string& name, const std::vector<std::string>& lines) {
  static const testing::ScopedTempDir dir("jsonl_task");
  const std::string path = dir.join(name + ".jsonl");
  std::ofstream f(path);
  for (const std::string& l : lines) f << l << '\n';
  return path;
}

// The jsonl task section reading `path`, with `extra` YAML keys ("prompt_field: q, ").
TaskSection jt_section(const std::string& path, const std::string& extra = "") {
  return task_section("{name: jsonl, " + extra + "path: '" + path + "'}");
}

// Loads `lines` through the registry's jsonl task with `extra` keys.
StatusOr<TaskFile> jt_load(const std::string& name, const std::vector<std::string>& lines,
                           const std::string& extra = "") {
  return jt_section(jt_write(name, lines), extra).task().load();
}

const std::string kGsm8kQuestion =
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?";
const std::string kGsm8kReasoning =
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
    "altogether in April and May.";

nlohmann::json jt_gsm8k_line() {
  return {{"question", kGsm8kQuestion}, {"answer", kGsm8kReasoning + "\n#### 72"}};
}

TEST(JsonlTaskTest, QuestionShapes) {
  auto f = jt_load("shapes",
                   {R"({"prompt": "What is 2+2?", "answer": "4", "level": 3})",
                    R"({"question": "Q2", "answer": 42})", R"({"problem": "Q3", "solution": "7"})",
                    // "prompt" is tried before "question"; the other stays metadata.
                    R"({"question": "second", "prompt": "first", "answer": "1"})",
                    R"({"prompt": "no answer", "numbers": [1, 2], "answer": null})"});
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ(f->samples.size(), 5u);
  EXPECT_EQ(f->skipped_lines, 0);
  const auto& s = f->samples;
  EXPECT_EQ(s[0].question, "What is 2+2?");
  EXPECT_EQ(s[0].metadata, nlohmann::json::parse(R"({"answer": "4", "level": 3})"));
  EXPECT_EQ(s[0].trace, "");
  EXPECT_TRUE(s[0].messages.is_null());
  EXPECT_EQ(s[1].question, "Q2");
  EXPECT_EQ(s[1].metadata, nlohmann::json::parse(R"({"answer": 42})"));  // numbers stay numbers
  EXPECT_EQ(s[2].question, "Q3");
  EXPECT_EQ(s[2].metadata, nlohmann::json::parse(R"({"answer": "7"})"));
  EXPECT_EQ(s[3].question, "first");
  EXPECT_EQ(s[3].metadata, nlohmann::json::parse(R"({"answer": "1", "question": "second"})"));
  EXPECT_EQ(s[4].metadata, nlohmann::json::parse(R"({"numbers": [1, 2]})"));  // null: no answer
}

TEST(JsonlTaskTest, Gsm8kAndMathSolutions) {
  auto f = jt_load(
      "solutions",
      {jt_gsm8k_line().dump(),
       R"({"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "solution": "Add: $\\frac{2}{4}+\\frac{1}{4} = \\boxed{\\frac{3}{4}}$.", "level": "Level 1", "type": "Algebra"})",
       R"({"problem": "P", "solution": "$\\boxed{5}$"})",
       // MATH-500 has both: "answer" is tried first, the solution stays metadata.
       R"({"problem": "P2", "solution": "So $\\boxed{6}$.", "answer": "6"})",
       // A trace field wins over the solution's reasoning.
       R"({"question": "Q", "answer": "Half: 2.\n#### 2", "trace": "4/2=2."})"});
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const auto& s = f->samples;
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].question, kGsm8kQuestion);
  EXPECT_EQ(s[0].metadata, nlohmann::json({{"answer", "72"}}));
  EXPECT_EQ(s[0].trace, kGsm8kReasoning);  // the text before ####
  EXPECT_EQ(s[1].metadata, nlohmann::json::parse(R"({"answer": "\\frac{3}{4}", "level": "Level 1",
                                      "type": "Algebra"})"));
  EXPECT_EQ(s[1].trace, "Add: $\\frac{2}{4}+\\frac{1}{4} = \\boxed{\\frac{3}{4}}$.");
  EXPECT_EQ(s[2].metadata, nlohmann::json({{"answer", "5"}}));
  EXPECT_EQ(s[2].trace, "");  // nothing but the boxed answer: no reasoning
  EXPECT_EQ(s[3].metadata,
            nlohmann::json::parse(R"({"answer": "6", "solution": "So $\\boxed{6}$."})"));
  EXPECT_EQ(s[3].trace, "");
  EXPECT_EQ(s[4].metadata, nlohmann::json({{"answer", "2"}}));
  EXPECT_EQ(s[4].trace, "4/2=2.");

  // solution_trace: false keeps the answer and drops the reasoning.
  auto off = jt_load("solutions_off", {jt_gsm8k_line().dump()}, "solution_trace: false, ");
  ASSERT_TRUE(off.ok()) << off.status().to_string();
  EXPECT_EQ(off->samples[0].metadata, nlohmann::json({{"answer", "72"}}));
  EXPECT_EQ(off->samples[0].trace, "");
}

TEST(JsonlTaskTest, Conversations) {
  const nlohmann::json single = nlohmann::json::parse(R"([
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "<think> 2+2=4 </think> <answer> 4 </answer>"}])");
  const nlohmann::json multi = nlohmann::json::parse(R"([
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "Half of 14?"},
      {"role": "tool", "content": "calc: 7"},
      {"role": "assistant", "content": "14/2 = 7.\n#### 7"}])");
  const nlohmann::json prompt_only =
      nlohmann::json::parse(R"([{"role": "user", "content": "Say 5."}])");
  const nlohmann::json plain = nlohmann::json::parse(
      R"([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "It is 5."}])");
  auto f = jt_load("messages", {nlohmann::json{{"messages", single}, {"source", "x"}}.dump(),
                                nlohmann::json{{"messages", multi}}.dump(),
                                nlohmann::json{{"messages", prompt_only}, {"answer", 5}}.dump(),
                                nlohmann::json{{"messages", plain}, {"answer", "5"}}.dump(),
                                nlohmann::json{{"messages", single}, {"answer", "5"}}.dump()});
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const auto& s = f->samples;
  ASSERT_EQ(s.size(), 5u);
  // R1's format: the think part is the trace, the answer tag the answer.
  EXPECT_EQ(s[0].question, "What is 2+2?");
  EXPECT_EQ(s[0].trace, "2+2=4");
  EXPECT_EQ(s[0].metadata, nlohmann::json::parse(R"({"answer": "4", "source": "x"})"));
  EXPECT_EQ(s[0].messages, single);  // the whole conversation, as in the file
  // Multi-turn: the last user message before the final assistant turn.
  EXPECT_EQ(s[1].question, "Half of 14?");
  EXPECT_EQ(s[1].trace, "14/2 = 7.");
  EXPECT_EQ(s[1].metadata, nlohmann::json({{"answer", "7"}}));
  EXPECT_EQ(s[1].messages, multi);
  // No assistant turn: a prompt for RL and evaluation; the answer field gives the answer.
  EXPECT_EQ(s[2].question, "Say 5.");
  EXPECT_EQ(s[2].trace, "");
  EXPECT_EQ(s[2].metadata, nlohmann::json({{"answer", 5}}));
  // An unmarked reply is the trace as a whole.
  EXPECT_EQ(s[3].trace, "It is 5.");
  EXPECT_EQ(s[3].metadata, nlohmann::json({{"answer", "5"}}));
  // A reply reaching another answer than the gold one keeps its own as trace_answer.
  EXPECT_EQ(s[4].metadata, nlohmann::json::parse(R"({"answer": "5", "trace_answer": "4"})"));
}

TEST(JsonlTaskTest, FieldOptions) {
  auto f = jt_load("fields",
                   {R"({"query": "Q1", "final": "#### 3", "steps": "1+2=3", "prompt": "kept"})"},
                   "prompt_field: query, answer_field: final, trace_field: steps, ");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ(f->samples.size(), 1u);
  EXPECT_EQ(f->samples[0].question, "Q1");
  EXPECT_EQ(f->samples[0].trace, "1+2=3");
  EXPECT_EQ(f->samples[0].metadata, nlohmann::json::parse(R"({"answer": "3", "prompt": "kept"})"));

  // messages_field: every line is a conversation, e.g. TRL's conversational "prompt".
  auto c = jt_load("fields_conv",
                   {R"({"prompt": [{"role": "user", "content": "Q"}], "solution": "\\boxed{9}"})"},
                   "messages_field: prompt, ");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->samples[0].question, "Q");
  EXPECT_EQ(c->samples[0].metadata, nlohmann::json({{"answer", "9"}}));
  EXPECT_EQ(c->samples[0].messages.size(), 1u);

  // An explicit prompt_field turns conversation detection off: "messages" is metadata.
  auto p = jt_load("fields_prompt", {R"({"q": "Q", "messages": []})"}, "prompt_field: q, ");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->samples[0].metadata, nlohmann::json::parse(R"({"messages": []})"));
  EXPECT_TRUE(p->samples[0].messages.is_null());
}

struct JsonlErrorCase {
  std::string line;                // written as line 3, after a good line and a blank one
  std::vector<std::string> wants;  // each must appear in the error
  std::string extra = "";          // section keys
};

TEST(JsonlTaskTest, BadLinesAreErrorsNamingFileLineAndField) {
  const std::vector<JsonlErrorCase> cases = {
      {R"({not json)", {"not JSON", "parse error"}},
      {R"([1, 2])", {"not a JSON object (got array)"}},
      {R"({"text": "Q", "answer": "1"})",
       {"no question", "\"prompt\", \"question\", \"problem\", \"messages\""}},
      {R"({"prompt": 7})", {"\"prompt\" must be a string, got number"}},
      {R"({"question": [{"role": "user", "content": "Q"}]})",
       {"\"question\" must be a string, got an array", "task.messages_field: question"}},
      {R"({"problem": ""})", {"\"problem\" is empty"}},
      {R"({"prompt": "Q", "answer": true})",
       {"\"answer\" must be a string or a number, got boolean"}},
      {R"({"prompt": "Q", "solution": ["1"]})",
       {"\"solution\" must be a string or a number, got array"}},
      {R"({"prompt": "Q", "trace": 3})", {"\"trace\" must be a string, got number"}},
      {R"({"messages": "hi"})", {"\"messages\" must be an array", "got string"}},
      {R"({"messages": []})", {"\"messages\" is empty"}},
      {R"({"messages": ["hi"]})", {"messages[0] must be an object", "got string"}},
      {R"({"messages": [{"role": "user"}]})", {"messages[0] has no \"content\""}},
      {R"({"messages": [{"content": "Q"}]})", {"messages[0] has no \"role\""}},
      {R"({"messages": [{"role": 1, "content": "Q"}]})",
       {"messages[0].role must be a string, got number"}},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
       {"messages[0].content must be a string, got array"}},
      {R"({"messages": [{"role": "user", "content": "Q"}, {"role": "bot", "content": "A"}]})",
       {"messages[1].role \"bot\" is not one of system, user, assistant, tool"}},
      {R"({"messages": [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]})",
       {"\"messages\" has no user message"}},
      {R"({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "A"}]})",
       {"messages[0].content (the question) is empty"}},
      {R"({"prompt": "Q"})", {"no \"query\" field (task.prompt_field)"}, "prompt_field: query, "},
      {R"({"prompt": "Q"})", {"no \"final\" field (task.answer_field)"}, "answer_field: final, "},
      {R"({"prompt": "Q"})", {"no \"conv\" field (task.messages_field)"}, "messages_field: conv, "},
  };
  for (const JsonlErrorCase& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string good = c.extra.empty() ? R"({"prompt": "ok", "answer": "1"})"
                             : c.extra.starts_with("prompt_field") ? R"({"query": "ok"})"
                             : c.extra.starts_with("answer_field")
                                 ? R"({"prompt": "ok", "final": "1"})"
                                 : R"({"conv": [{"role": "user", "content": "ok"}]})";
    const std::string path = jt_write("bad", {good, "  ", c.line});
    auto f = jt_section(path, c.extra).task().load();
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
    const std::string msg = f.status().message();
    EXPECT_TRUE(msg.starts_with(path + ":3: ")) << msg;  // blank lines count as lines
    for (const std::string& w : c.wants) EXPECT_NE(msg.find(w), std::string::npos) << msg;
  }
  auto missing = jt_section(::testing::TempDir() + "/no_such_file.jsonl").task().load();
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(JsonlTaskTest, SkipBadLinesCountsThem) {
  std::vector<std::string> lines = {R"({"prompt": "a", "answer": "1"})", "", "   "};
  for (int i = 0; i < 7; ++i) lines.push_back(i % 2 ? "[1]" : R"({"prompt": 3})");
  lines.push_back(R"({"question": "b", "answer": "2"})");
  const std::string path = jt_write("skip", lines);
  // Without the option the first bad line stops the load.
  auto strict = TaskSource::create(jt_section(path));
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find(path + ":4: "), std::string::npos);

  auto src = TaskSource::create(jt_section(path, "skip_bad_lines: true, eval_size: 0, "));
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ(src->skipped_lines(), 7);  // blank lines are not bad
  ASSERT_EQ(src->skip_reasons().size(), 5u);
  EXPECT_EQ(src->skip_reasons()[0], path + ":4: \"prompt\" must be a string, got number");
  EXPECT_EQ(src->skip_reasons()[1], path + ":5: not a JSON object (got array)");
  std::set<std::string> questions;
  for (uint64_t i = 0; i < 2; ++i) questions.insert(src->train(i).question);
  EXPECT_EQ(questions, (std::set<std::string>{"a", "b"}));

  // Every line bad: no problems, and the reasons say why.
  auto none =
      TaskSource::create(jt_section(jt_write("skip_all", {"[1]", "2"}), "skip_bad_lines: true, "));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no problems (2 bad lines skipped"), std::string::npos)
      << none.status().to_string();
  EXPECT_NE(none.status().message().find(":2: not a JSON object (got number)"), std::string::npos)
      << none.status().to_string();
}

TEST(JsonlTaskTest, FieldOptionMistakesAreRecipeErrors) {
  auto bind = [](const std::string& keys) {
    return load_config_string<TaskSection>("{name: jsonl, path: x.jsonl, " + keys + "}", {},
                                           "task");
  };
  struct Case {
    std::string keys;
    std::vector<std::string> wants;
  };
  const std::vector<Case> cases = {
      {"prompt_field: q, messages_field: m",
       {"task.prompt_field=q", "task.messages_field=m", "set one"}},
      {"answer_field: question", {"task.answer_field=question", "task.prompt_field", "when unset"}},
      {"prompt_field: solution", {"task.prompt_field=solution", "task.answer_field"}},
      {"trace_field: a, answer_field: a", {"task.answer_field=a", "task.trace_field"}},
      {"trace_field: messages", {"task.trace_field=messages", "task.messages_field"}},
      {"messages_field: trace", {"task.messages_field=trace", "task.trace_field"}},
  };
  for (const Case& c : cases) {
    auto s = bind(c.keys);
    ASSERT_FALSE(s.ok()) << c.keys;
    for (const std::string& w : c.wants)
      EXPECT_NE(s.status().message().find(w), std::string::npos) << s.status().to_string();
  }
  // Distinct names bind; a prompt field of "messages" is a plain field then.
  EXPECT_TRUE(bind("prompt_field: q, answer_field: a, trace_field: t").ok());
  EXPECT_TRUE(bind("prompt_field: messages").ok());
  EXPECT_TRUE(bind("messages_field: conversation, answer_field: gold").ok());
}

// A conversation, a GSM8K line and a MATH line as SFT examples: the prompt is the
// question, the response rebuilds the reasoning and the answer in R1's format.
TEST(JsonlTaskTest, SolvedProblemsFeedSft) {
  const std::vector<std::string> lines = {
      R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "<think> 2+2=4 </think> <answer> 4 </answer>"}]})",
      jt_gsm8k_line().dump(), R"({"problem": "1+1?", "solution": "One and one: $\\boxed{2}$."})"};
  const std::string path = jt_write("sft", lines);
  auto src = TaskSource::create(jt_section(path, "eval_size: 0, "));
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  auto ex = src->solved_problems(3);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  std::map<std::string, std::string> by_question(ex->begin(), ex->end());
  ASSERT_EQ(by_question.size(), 3u);
  EXPECT_EQ(by_question["What is 2+2?"], "<think> 2+2=4 </think> <answer> 4 </answer>");
  EXPECT_EQ(by_question[kGsm8kQuestion],
            "<think> " + kGsm8kReasoning + " </think> <answer> 72 </answer>");
  EXPECT_EQ(by_question["1+1?"],
            "<think> One and one: $\\boxed{2}$. </think> <answer> 2 </answer>");

  // prefill_think: the response starts inside the reasoning.
  auto pre = TaskSource::create(jt_section(path, "eval_size: 0, prefill_think: true, "));
  ASSERT_TRUE(pre.ok());
  auto pre_ex = pre->solved_problems(3);
  ASSERT_TRUE(pre_ex.ok());
  std::map<std::string, std::string> pre_by(pre_ex->begin(), pre_ex->end());
  EXPECT_EQ(pre_by["What is 2+2?"], "2+2=4 </think> <answer> 4 </answer>");

  // A trace without an answer cannot end its response: an error naming the problem.
  auto no_answer = TaskSource::create(jt_section(
      jt_write("sft_no_answer", {R"({"prompt": "Q", "trace": "steps"})"}), "eval_size: 0, "));
  ASSERT_TRUE(no_answer.ok());
  auto bad = no_answer->solved_problems(1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("has no answer"), std::string::npos)
      << bad.status().to_string();
}

}  // namespace
}  // namespace r1kit::data
