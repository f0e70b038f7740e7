#include "eval/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "core/atomic_file.h"
#include "data/tokenizer.h"
#include "reward/math_verify.h"
#include "reward/score_group.h"

namespace r1kit::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// NaN and infinities as JSON null.
nlohmann::json num(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

nlohmann::json sample_json(const SampleRecord& s) {
  return {{"text", s.text},
          {"answer", s.answer},
          {"accuracy", num(s.accuracy)},
          {"format", num(s.format)},
          {"total", num(s.total)},
          {"correct", s.correct},
          {"length", s.length},
          {"finish_reason", s.finish_reason}};
}

Status check_options(const EvalOptions& o, int64_t n) {
  if (o.k < 1) return InvalidArgument("eval k={}: must be >= 1", o.k);
  if (n < o.k) return InvalidArgument("eval n={} < k={}: need at least k samples", n, o.k);
  if (!(o.temperature > 0))
    return InvalidArgument("eval temperature={}: must be > 0 (greedy is greedy_pass1)",
                           o.temperature);
  if (o.max_new_tokens < 1)
    return InvalidArgument("eval max_new_tokens={}: must be >= 1", o.max_new_tokens);
  if (o.batch < 1) return InvalidArgument("eval batch={}: must be >= 1", o.batch);
  if (o.max_problems < 0)
    return InvalidArgument("eval max_problems={}: must be >= 0", o.max_problems);
  return OkStatus();
}

// Where the accuracy and format rewards sit among the components (found by role).
struct RewardLayout {
  size_t accuracy = 0;
  int format = -1;  // -1: none
};

// Scores one problem's completions and fills their records.
std::vector<SampleRecord> score_samples(const reward::CombinedReward& rewards,
                                        const RewardLayout& layout, const TextCodec& codec,
                                        const std::string& prompt, const data::TaskSample& problem,
                                        const std::vector<rollout::Completion>& completions,
                                        double threshold) {
  reward::ScoredGroup group =
      reward::score_completions(rewards, prompt, problem.metadata, completions, codec.decode,
                                codec.stop_token_ids);
  const reward::GroupScores& scores = group.scores;
  std::vector<SampleRecord> out(completions.size());
  for (size_t j = 0; j < completions.size(); ++j) {
    SampleRecord& r = out[j];
    r.text = std::move(group.samples[j].completion);
    r.answer = vote_answer(r.text);
    r.accuracy = scores.components[layout.accuracy][j];
    r.format = layout.format >= 0 ? scores.components[layout.format][j] : kNaN;
    r.total = scores.total[j];
    for (const auto& comp : scores.components) r.components.push_back(comp[j]);
    r.correct = !std::isnan(r.accuracy) && r.accuracy >= threshold;
    r.length = static_cast<int64_t>(completions[j].token_ids.size());
    r.finish_reason = rollout::finish_reason_name(completions[j].finish_reason);
  }
  return out;
}

}  // namespace

std::string low_format_rate_warning(double format_rate, const data::ResolvedPromptFormat& format) {
  if (std::isnan(format_rate) || format_rate >= kLowFormatRate) return "";
  const std::string used =
      fmt::format("{}{}", format.chat_template, format.prefill_think ? " with prefill_think" : "");
  const std::string rate = fmt::format("format rate {:.1f}% (under {:.0f}%)", 100.0 * format_rate,
                                       100.0 * kLowFormatRate);
  if (!format.recorded)
    return fmt::format(
        "{}: the model records no prompt format; if it was trained with another template than "
        "{}, evaluate with that one (--chat-template / task.chat_template), else it did not "
        "learn the answer format",
        rate, used);
  const data::PromptFormat& rec = *format.recorded;
  const std::string trained =
      fmt::format("{}{}", rec.chat_template, rec.prefill_think ? " with prefill_think" : "");
  if (format.contradicts)
    return fmt::format(
        "{}: likely a template mismatch: trained with {}, evaluated with {} (leave the "
        "template at auto to use the recorded one)",
        rate, trained, used);
  return fmt::format(
      "{} with the template the model was trained with ({}): the model did not learn the "
      "answer format the format reward checks (<think> ... </think> <answer> ... </answer>)",
      rate, trained);
}

TextCodec tokenizer_codec(const data::Tokenizer& tokenizer) {
  TextCodec c;
  c.encode = [tokenizer](std::string_view text) {
    std::vector<int32_t> ids = tokenizer.encode(text);
    return std::vector<int64_t>(ids.begin(), ids.end());
  };
  c.decode = [tokenizer](std::span<const int64_t> ids) {
    std::vector<int32_t> ids32(ids.begin(), ids.end());
    return tokenizer.decode(ids32);
  };
  c.stop_token_ids = tokenizer.stop_ids();
  return c;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n - c < k) return 1.0;
  // 1 - prod_{i = n-c+1}^{n} (1 - k / i)  ==  1 - C(n-c, k) / C(n, k)
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - prod;
}

std::pair<std::string, int64_t> majority_vote(const std::vector<std::string>& answers) {
  std::unordered_map<std::string, int64_t> count;
  std::string best;
  int64_t best_count = 0, best_first = -1;
  std::unordered_map<std::string, int64_t> first;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (answers[i].empty()) continue;
    first.emplace(answers[i], static_cast<int64_t>(i));
    ++count[answers[i]];
  }
  for (const auto& [answer, c] : count) {
    const int64_t f = first[answer];
    if (c > best_count || (c == best_count && f < best_first)) {
      best = answer;
      best_count = c;
      best_first = f;
    }
  }
  return {best, best_first};
}

std::string vote_answer(std::string_view completion) {
  const reward::ExtractedAnswer a = reward::extract_answer(completion);
  if (!a.found || a.hedged) return "";
  return reward::normalize_answer(a.text);
}

nlohmann::json ProblemRecord::to_json() const {
  nlohmann::json j;
  j["index"] = index;
  j["question"] = question;
  j["metadata"] = metadata;
  j["num_correct"] = num_correct;
  j["pass_at_k"] = pass_at_k;
  j["majority_answer"] = majority_answer;
  j["majority_correct"] = majority_correct;
  j["samples"] = nlohmann::json::array();
  for (const auto& s : samples) j["samples"].push_back(sample_json(s));
  if (has_greedy) j["greedy"] = sample_json(greedy);
  return j;
}

std::string ProblemRecord::score_lines() const {
  std::string out;
  for (const auto& s : samples) {
    nlohmann::json j = metadata.is_object() ? metadata : nlohmann::json::object();
    j["prompt"] = question;
    j["completion"] = s.text;
    out += j.dump() + "\n";
  }
  return out;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j;
  j["problems"] = problems;
  j["samples_per_problem"] = n;
  j["k"] = k;
  j["temperature"] = temperature;
  j["max_new_tokens"] = max_new_tokens;
  j["pass@1"] = num(pass_at_1);
  j[fmt::format("pass@{}", k)] = num(pass_at_k);
  j[fmt::format("maj@{}", k)] = num(maj_at_k);
  nlohmann::json pa = nlohmann::json::object();
  for (const auto& [kk, v] : pass_at) pa[std::to_string(kk)] = num(v);
  j["pass_at"] = pa;
  j["greedy_pass@1"] = greedy_pass_at_1 >= 0 ? num(greedy_pass_at_1) : nlohmann::json(nullptr);
  j["greedy_format_rate"] =
      greedy_format_rate >= 0 ? num(greedy_format_rate) : nlohmann::json(nullptr);
  j["greedy_mean_length"] =
      greedy_mean_length >= 0 ? num(greedy_mean_length) : nlohmann::json(nullptr);
  j["format_rate"] = num(format_rate);
  j["mean_length"] = num(mean_length);
  j["mean_reward"] = num(mean_reward);
  nlohmann::json comp = nlohmann::json::object();
  for (const auto& [name, v] : component_means) comp[name] = num(v);
  j["reward_components"] = comp;
  j["finish_reasons"] = finish_reasons;
  j["unjudged"] = unjudged;
  j["generated_tokens"] = generated_tokens;
  j["seconds"] = seconds;
  return j;
}

std::map<std::string, double> EvalReport::metrics(const std::string& prefix) const {
  std::map<std::string, double> m;
  m[prefix + "pass@1"] = pass_at_1;
  m[prefix + fmt::format("pass@{}", k)] = pass_at_k;
  m[prefix + fmt::format("maj@{}", k)] = maj_at_k;
  if (greedy_pass_at_1 >= 0) m[prefix + "greedy_pass@1"] = greedy_pass_at_1;
  if (!std::isnan(format_rate)) m[prefix + "format"] = format_rate;
  m[prefix + "completion_len"] = mean_length;
  m[prefix + "reward"] = mean_reward;
  for (const auto& [name, v] : component_means) m[prefix + "reward/" + name] = v;
  int64_t total = 0;
  for (const auto& [reason, c] : finish_reasons) total += c;
  for (const auto& [reason, c] : finish_reasons)
    m[prefix + "finish/" + reason] = total > 0 ? static_cast<double>(c) / total : 0.0;
  return m;
}

std::string EvalReport::table() const {
  auto pct = [](double x) {
    return std::isnan(x) ? std::string("n/a") : fmt::format("{:6.2f}%", 100.0 * x);
  };
  std::string t;
  t += fmt::format("{} problems, {} samples each at temperature {}, max {} new tokens\n", problems,
                   n, temperature, max_new_tokens);
  t += fmt::format("  {:<18} {}\n", "pass@1 (mean@" + std::to_string(n) + ")", pct(pass_at_1));
  for (const auto& [kk, v] : pass_at)
    if (kk != 1) t += fmt::format("  {:<18} {}\n", fmt::format("pass@{}", kk), pct(v));
  t += fmt::format("  {:<18} {}\n", fmt::format("maj@{}", k), pct(maj_at_k));
  if (greedy_pass_at_1 >= 0) {
    t += fmt::format("  {:<18} {}\n", "greedy pass@1", pct(greedy_pass_at_1));
    t += fmt::format("  {:<18} {}\n", "greedy format", pct(greedy_format_rate));
  }
  t += fmt::format("  {:<18} {}\n", "format rate", pct(format_rate));
  t += fmt::format("  {:<18} {:.1f} tokens\n", "mean length", mean_length);
  t += fmt::format("  {:<18} {:.4f}\n", "mean reward", mean_reward);
  for (const auto& [name, v] : component_means)
    t += fmt::format("  {:<18} {:.4f}\n", "  " + name, v);
  std::string fr;
  for (const auto& [reason, c] : finish_reasons) fr += fmt::format(" {}={}", reason, c);
  t += fmt::format("  {:<18}{}\n", "finish reasons", fr);
  if (unjudged > 0) t += fmt::format("  {:<18} {}\n", "unjudged samples", unjudged);
  t += fmt::format("  {} tokens generated in {:.1f} s\n", generated_tokens, seconds);
  return t;
}

StatusOr<EvalReport> evaluate(rollout::RolloutSource& source, const TextCodec& codec,
                              const std::vector<data::TaskSample>& problems, const RenderFn& render,
                              const reward::CombinedReward& rewards, const EvalOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const EvalOptions& o = options;
  const int64_t n = o.n > 0 ? o.n : o.k;
  RETURN_IF_ERROR(check_options(o, n));
  if (!codec.encode || !codec.decode) return InvalidArgument("eval: the codec needs encode/decode");
  if (!render) return InvalidArgument("eval: no render function");
  RewardLayout layout;
  const int64_t accuracy = rewards.role_index(reward::kRoleAccuracy);
  if (accuracy < 0)
    return InvalidArgument(
        "eval: no reward has role accuracy (the task's checker; give it role: accuracy)");
  layout.accuracy = static_cast<size_t>(accuracy);
  layout.format = static_cast<int>(rewards.role_index(reward::kRoleFormat));

  const int64_t num_problems =
      o.max_problems > 0 ? std::min<int64_t>(o.max_problems, problems.size()) : problems.size();
  if (num_problems == 0) return InvalidArgument("eval: no problems");

  EvalReport rep;
  rep.problems = num_problems;
  rep.n = n;
  rep.k = o.k;
  rep.temperature = o.temperature;
  rep.max_new_tokens = o.max_new_tokens;
  rep.records.resize(num_problems);

  rollout::SamplingParams sampling;
  sampling.temperature = o.temperature;
  sampling.top_p = o.top_p;
  sampling.max_new_tokens = o.max_new_tokens;
  sampling.stop_token_ids = codec.stop_token_ids;
  sampling.stop_strings = o.stop_strings;
  sampling.seed = o.seed;
  rollout::SamplingParams greedy = sampling;
  greedy.temperature = 0.0;

  for (int64_t first = 0; first < num_problems; first += o.batch) {
    const int64_t last = std::min(num_problems, first + o.batch);
    std::vector<std::string> prompts;
    rollout::GenerateRequest req;
    for (int64_t i = first; i < last; ++i) {
      prompts.push_back(render(problems[i]));
      rollout::PromptInput p;
      p.ids = codec.encode(prompts.back());
      p.index = i;  // seeds depend on the problem, not on the batching
      if (p.ids.empty()) return InvalidArgument("eval: problem {} renders to an empty prompt", i);
      req.prompts.push_back(std::move(p));
    }
    req.group_size = n;
    req.sampling = sampling;
    ASSIGN_OR_RETURN(std::vector<rollout::Group> groups, source.generate(req));
    if (groups.size() != req.prompts.size())
      return Internal("eval: generate returned {} groups for {} prompts", groups.size(),
                      req.prompts.size());
    std::vector<rollout::Group> greedy_groups;
    if (o.greedy_pass1) {
      rollout::GenerateRequest greq = req;
      greq.group_size = 1;
      greq.sampling = greedy;
      ASSIGN_OR_RETURN(greedy_groups, source.generate(greq));
      if (greedy_groups.size() != req.prompts.size())
        return Internal("eval: greedy generate returned {} groups for {} prompts",
                        greedy_groups.size(), req.prompts.size());
    }
    for (int64_t i = first; i < last; ++i) {
      const size_t b = static_cast<size_t>(i - first);
      const auto& completions = groups[b].completions;
      if (static_cast<int64_t>(completions.size()) != n)
        return Internal("eval: problem {}: {} completions, expected {}", i, completions.size(), n);
      ProblemRecord& rec = rep.records[i];
      rec.index = i;
      rec.question = problems[i].question;
      rec.metadata = problems[i].metadata;
      rec.samples = score_samples(rewards, layout, codec, prompts[b], problems[i], completions,
                                  o.correct_threshold);
      if (o.greedy_pass1) {
        const auto& gc = greedy_groups[b].completions;
        if (gc.size() != 1)
          return Internal("eval: problem {}: {} greedy completions", i, gc.size());
        rec.greedy = score_samples(rewards, layout, codec, prompts[b], problems[i], gc,
                                   o.correct_threshold)[0];
        rec.has_greedy = true;
      }
    }
    if (o.on_progress) o.on_progress(last, num_problems);
  }

  // Aggregate: per problem first, then the mean over problems.
  std::vector<int64_t> ks;
  for (int64_t kk = 1; kk <= n; kk *= 2) ks.push_back(kk);
  if (std::find(ks.begin(), ks.end(), o.k) == ks.end()) ks.push_back(o.k);
  for (int64_t kk : ks) rep.pass_at[kk] = 0.0;
  const size_t n_comp = rewards.components().size();
  std::vector<double> comp_sum(n_comp, 0.0);
  std::vector<int64_t> comp_cnt(n_comp, 0);
  double reward_sum = 0, length_sum = 0, format_hits = 0, greedy_hits = 0, greedy_format = 0,
         greedy_len = 0;
  int64_t reward_cnt = 0, samples_total = 0;
  for (ProblemRecord& rec : rep.records) {
    rec.num_correct = 0;
    std::vector<std::string> votes;
    for (const SampleRecord& s : rec.samples) {
      rec.num_correct += s.correct ? 1 : 0;
      if (std::isnan(s.accuracy)) ++rep.unjudged;
      if (s.format >= 1.0) format_hits += 1;
      length_sum += s.length;
      rep.generated_tokens += s.length;
      if (!std::isnan(s.total)) {
        reward_sum += s.total;
        ++reward_cnt;
      }
      ++rep.finish_reasons[s.finish_reason];
      ++samples_total;
    }
    for (size_t j = 0; j < static_cast<size_t>(o.k); ++j) votes.push_back(rec.samples[j].answer);
    const auto [answer, at] = majority_vote(votes);
    rec.majority_answer = answer;
    rec.majority_correct = at >= 0 && rec.samples[at].correct;
    rec.pass_at_k = pass_at_k(n, rec.num_correct, o.k);
    rep.pass_at_1 += static_cast<double>(rec.num_correct) / n;
    for (int64_t kk : ks) rep.pass_at[kk] += pass_at_k(n, rec.num_correct, kk);
    rep.maj_at_k += rec.majority_correct ? 1.0 : 0.0;
    if (rec.has_greedy) {
      greedy_hits += rec.greedy.correct ? 1 : 0;
      greedy_format += rec.greedy.format >= 1.0 ? 1 : 0;
      greedy_len += rec.greedy.length;
      rep.generated_tokens += rec.greedy.length;
    }
  }
  for (const ProblemRecord& rec : rep.records) {
    for (const SampleRecord& s : rec.samples) {
      for (size_t c = 0; c < n_comp && c < s.components.size(); ++c) {
        if (std::isnan(s.components[c])) continue;
        comp_sum[c] += s.components[c];
        ++comp_cnt[c];
      }
    }
  }
  const double P = static_cast<double>(num_problems);
  rep.pass_at_1 /= P;
  for (auto& [kk, v] : rep.pass_at) v /= P;
  rep.pass_at_k = rep.pass_at.at(o.k);
  rep.maj_at_k /= P;
  rep.format_rate = layout.format >= 0 ? format_hits / samples_total : kNaN;
  rep.mean_length = length_sum / samples_total;
  rep.mean_reward = reward_cnt > 0 ? reward_sum / reward_cnt : kNaN;
  if (o.greedy_pass1) {
    rep.greedy_pass_at_1 = greedy_hits / P;
    rep.greedy_format_rate = layout.format >= 0 ? greedy_format / P : kNaN;
    rep.greedy_mean_length = greedy_len / P;
  }
  for (size_t c = 0; c < n_comp; ++c)
    if (comp_cnt[c] > 0)
      rep.component_means[rewards.components()[c].name] = comp_sum[c] / comp_cnt[c];
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (!o.records_path.empty()) {
    std::string text;
    for (const ProblemRecord& rec : rep.records)
      text += o.records_for_scoring ? rec.score_lines() : rec.to_json().dump() + "\n";
    RETURN_IF_ERROR(write_file_atomic(o.records_path, text));
  }
  return rep;
}

StatusOr<EvalReport> evaluate(rollout::RolloutSource& source, const data::Tokenizer& tokenizer,
                              const data::TaskSource& task, const reward::CombinedReward& rewards,
                              const EvalOptions& options) {
  return evaluate(
      source, tokenizer_codec(tokenizer), task.eval(),
      [&task](const data::TaskSample& s) { return task.render(s); }, rewards, options);
}

}  // namespace r1kit::eval
