// `r1kit reward score|list`: score a JSONL file of completions with any rewards, the same
// way training does, and list the rewards this binary knows.
//
//   r1kit reward score --rewards math_accuracy,format --weights 1,0.5
//       --args '{"format": {"prefilled_think": true}}' --input samples.jsonl [--output FILE]
//
// Input: one JSON object a line, {"prompt", "completion", "completion_ids"?, "answer",
// any other metadata field such as "numbers"/"target"}. Output: one line per input,
// {"total": x, "rewards": {"name": v}}, null for "cannot judge". Consecutive lines with
// the same prompt are scored as one group (reward/jsonl.h). A bad line is an error
// naming file:line; with --output the file is then not written (written atomically).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ext/stdio_filebuf.h>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/commands.h"
#include "core/atomic_file.h"
#include "reward/jsonl.h"
#include "reward/plugin.h"
#include "reward/reward.h"

namespace r1kit::apps {
namespace {

struct RewardScoreFlags {
  std::string rewards;
  std::string weights;
  std::string args;
  std::string input;
  std::string output;
  std::vector<std::string> plugins;
};

Status run_reward_score(const RewardScoreFlags& f) {
  RETURN_IF_ERROR(reward::load_reward_plugins(f.plugins));
  ASSIGN_OR_RETURN(auto specs, reward::specs_from_flags(f.rewards, f.weights, f.args));
  ASSIGN_OR_RETURN(reward::CombinedReward rewards, reward::build_rewards(specs));
  // The input file is opened close-on-exec, so no program a reward runs inherits it.
  std::unique_ptr<__gnu_cxx::stdio_filebuf<char>> filebuf;
  std::unique_ptr<std::istream> file;
  std::istream* in = &std::cin;
  if (f.input != "-") {
    int fd = ::open(f.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NotFound("--input {}: cannot be read ({})", f.input, std::strerror(errno));
    filebuf = std::make_unique<__gnu_cxx::stdio_filebuf<char>>(fd, std::ios::in | std::ios::binary);
    file = std::make_unique<std::istream>(filebuf.get());
    in = file.get();
  }
  const std::string source = f.input == "-" ? "<stdin>" : f.input;
  const bool to_stdout = f.output.empty() || f.output == "-";
  std::ostringstream buffer;
  int64_t unjudged = 0;
  ASSIGN_OR_RETURN(int64_t n, reward::score_jsonl(*in, source, rewards,
                                                  to_stdout ? std::cout : buffer, &unjudged));
  if (to_stdout) {
    std::cout.flush();
  } else {
    RETURN_IF_ERROR(write_file_atomic(f.output, buffer.str()));
  }
  std::fprintf(stderr, "scored %lld samples%s%s; %lld could not be judged (null total)\n",
               static_cast<long long>(n), to_stdout ? "" : " -> ",
               to_stdout ? "" : f.output.c_str(), static_cast<long long>(unjudged));
  if (n > 0 && unjudged == n)
    return FailedPrecondition(
        "no sample could be judged: every total is null. A reward returns null when the "
        "record lacks what it reads (e.g. \"answer\" for math_accuracy) or its --args are "
        "wrong; see each reward's line in `r1kit reward list`");
  return OkStatus();
}

Status run_reward_list(const std::vector<std::string>& plugins) {
  RETURN_IF_ERROR(reward::load_reward_plugins(plugins));
  for (const auto& [name, doc] : reward::RewardRegistry::global().list())
    std::printf("%-22s %s\n", name.c_str(), doc.c_str());
  return OkStatus();
}

}  // namespace

void add_reward_command(CLI::App& root, int* exit_code) {
  auto* reward = root.add_subcommand("reward", "Score completions with rewards; list rewards");
  reward->require_subcommand(1);

  static RewardScoreFlags f;
  auto* score = reward->add_subcommand(
      "score",
      "Score a JSONL file (one {prompt, completion, answer, ...metadata} object a line): one "
      "{\"total\": x, \"rewards\": {name: v}} line per input, null = cannot judge");
  score
      ->add_option("--rewards", f.rewards,
                   "comma-separated reward names, e.g. math_accuracy,format")
      ->required();
  score->add_option("--weights", f.weights, "comma-separated weights, one per reward (default 1)");
  score->add_option("--args", f.args,
                    "JSON object of reward arguments keyed by reward name, e.g. "
                    "'{\"remote\": {\"address\": \"127.0.0.1:50061\"}}'");
  score->add_option("--input", f.input, "input JSONL file ('-' = stdin)")->required();
  score->add_option("--output", f.output, "output JSONL file (default: stdout)");
  score->add_option("--plugin", f.plugins, "reward plug-in library to load first (repeatable)");
  score->callback([=] { *exit_code = report(run_reward_score(f)); });

  static std::vector<std::string> list_plugins;
  auto* list =
      reward->add_subcommand("list", "List the rewards this binary knows, with a line each");
  list->add_option("--plugin", list_plugins, "reward plug-in library to load first (repeatable)");
  list->callback([=] { *exit_code = report(run_reward_list(list_plugins)); });
}

}  // namespace r1kit::apps
