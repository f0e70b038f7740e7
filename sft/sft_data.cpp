#include "sft/sft_data.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json.h"

namespace r1kit::sft {

namespace {
StatusOr<std::string> string_field(const nlohmann::json& j, const char* key,
                                   const std::string& where) {
  if (!j.contains(key)) return InvalidArgument("{}: missing \"{}\"", where, key);
  if (!j[key].is_string()) return InvalidArgument("{}: \"{}\" must be a string", where, key);
  return j[key].get<std::string>();
}
}  // namespace

StatusOr<std::vector<TextExample>> read_sft_jsonl(const std::string& path, bool multi_turn) {
  std::ifstream in(path);
  if (!in) return NotFound("{}: cannot open", path);
  std::vector<TextExample> out;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, lineno);
    auto j = parse_json_or_discarded(line);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument("{}: not a JSON object", where);
    TextExample ex;
    if (j.contains("messages")) {
      const auto& msgs = j["messages"];
      if (!msgs.is_array()) return InvalidArgument("{}: \"messages\" must be an array", where);
      std::vector<std::pair<std::string, std::string>> turns;
      for (const auto& m : msgs) {
        if (!m.is_object()) return InvalidArgument("{}: a message must be an object", where);
        ASSIGN_OR_RETURN(std::string role, string_field(m, "role", where));
        ASSIGN_OR_RETURN(std::string content, string_field(m, "content", where));
        turns.emplace_back(role, content);
      }
      size_t i = 0;
      if (i < turns.size() && turns[i].first == "system") ex.system_prompt = turns[i++].second;
      const bool single =
          turns.size() - i == 2 && turns[i].first == "user" && turns[i + 1].first == "assistant";
      const bool has_assistant = std::any_of(turns.begin(), turns.end(),
                                             [](const auto& t) { return t.first == "assistant"; });
      if (!single && multi_turn && has_assistant) {
        ex = TextExample{};
        ex.messages =
            parse_json_or_discarded<nlohmann::ordered_json>(line)["messages"];  // key order kept
        out.push_back(std::move(ex));
        continue;
      }
      if (!single)
        return InvalidArgument(
            "{}: \"messages\" must be [system,] user, assistant (one turn each); multi-turn "
            "conversations need a Jinja chat template (task.chat_template: model or a .jinja "
            "file) and an assistant message",
            where);
      ex.question = turns[i].second;
      ex.response = turns[i + 1].second;
    } else {
      ASSIGN_OR_RETURN(ex.question, string_field(j, "prompt", where));
      ASSIGN_OR_RETURN(ex.response, string_field(j, "response", where));
    }
    out.push_back(std::move(ex));
  }
  if (out.empty()) return InvalidArgument("{}: no examples", path);
  return out;
}

namespace {
// A multi-turn conversation as rendered texts with their assistant spans: one, or one
// per assistant turn when the template rewrites earlier turns.
StatusOr<std::vector<data::RenderedConversation>> render_conversation(
    const TextExample& ex, const data::ChatTemplateOptions& opts) {
  if (opts.kind != data::ChatTemplateKind::kJinja || opts.jinja == nullptr)
    return InvalidArgument(
        "a multi-turn conversation needs a Jinja chat template (task.chat_template: model or a "
        ".jinja file)");
  auto whole = data::render_assistant_spans(*opts.jinja, ex.messages, opts.jinja_vars);
  if (whole.ok()) return std::vector<data::RenderedConversation>{std::move(whole).value()};
  if (whole.status().message().find("not prefix-stable") == std::string::npos)
    return whole.status();
  return data::render_assistant_turns(*opts.jinja, ex.messages, opts.jinja_vars);
}

// Encodes `r` piece by piece (text between spans untrained, spans trained), cut at
// max_len; false when no trained token is left.
bool sample_from_spans(const data::RenderedConversation& r, const data::Tokenizer& tok,
                       int64_t max_len, SftSample* s) {
  const std::string_view text(r.text);
  auto add = [&](size_t begin, size_t end, bool trained) {
    if (end <= begin) return;
    for (int32_t id : tok.encode(text.substr(begin, end - begin))) {
      s->ids.push_back(id);
      s->trained.push_back(trained ? 1 : 0);
    }
  };
  size_t pos = 0;
  for (const auto& span : r.assistant_spans) {
    add(pos, span.begin, false);
    add(span.begin, span.end, true);
    pos = span.end;
  }
  add(pos, text.size(), false);
  if (static_cast<int64_t>(s->ids.size()) > max_len) {
    s->ids.resize(max_len);
    s->trained.resize(max_len);
  }
  // Position 0 predicts nothing's target; a trained token must be at 1 or later.
  const auto first =
      std::find(s->trained.begin() + std::min<size_t>(1, s->trained.size()), s->trained.end(), 1);
  if (first == s->trained.end()) return false;
  s->n_prompt = first - s->trained.begin();
  return true;
}
}  // namespace

StatusOr<std::string> example_text(const TextExample& ex, const data::ChatTemplateOptions& opts) {
  if (ex.messages.is_null()) {
    data::ChatTemplateOptions o = opts;
    if (ex.system_prompt) o.system_prompt = ex.system_prompt;
    if (o.kind != data::ChatTemplateKind::kJinja)
      return data::render_sft_example(o, ex.question, ex.response).text;
    ASSIGN_OR_RETURN(data::SftExample e,
                     data::render_jinja_sft_example(o, ex.question, ex.response));
    return e.text;
  }
  ASSIGN_OR_RETURN(auto rendered, render_conversation(ex, opts));
  return rendered.back().text;
}

StatusOr<std::vector<SftSample>> tokenize_examples(const std::vector<TextExample>& examples,
                                                   const data::Tokenizer& tok,
                                                   data::ChatTemplateOptions opts, int64_t max_len,
                                                   int64_t* dropped) {
  std::vector<SftSample> out;
  out.reserve(examples.size());
  int64_t n_dropped = 0;
  const auto default_system = opts.system_prompt;
  for (size_t k = 0; k < examples.size(); ++k) {
    const TextExample& ex = examples[k];
    if (!ex.messages.is_null()) {
      auto rendered = render_conversation(ex, opts);
      if (!rendered.ok()) return rendered.status().with_context(fmt::format("example {}", k));
      for (const auto& r : *rendered) {
        SftSample s;
        if (sample_from_spans(r, tok, max_len, &s))
          out.push_back(std::move(s));
        else
          ++n_dropped;
      }
      continue;
    }
    opts.system_prompt = ex.system_prompt ? ex.system_prompt : default_system;
    data::SftExample text;
    if (opts.kind == data::ChatTemplateKind::kJinja) {
      auto rendered = data::render_jinja_sft_example(opts, ex.question, ex.response);
      if (!rendered.ok()) return rendered.status().with_context(fmt::format("example {}", k));
      text = std::move(rendered).value();
    } else {
      text = data::render_sft_example(opts, ex.question, ex.response);
    }
    SftSample s;
    for (int32_t id : tok.encode(std::string_view(text.text).substr(0, text.response_offset)))
      s.ids.push_back(id);
    s.n_prompt = static_cast<int64_t>(s.ids.size());
    if (s.n_prompt + 1 >= max_len || s.n_prompt == 0) {
      ++n_dropped;
      continue;
    }
    for (int32_t id : tok.encode(std::string_view(text.text).substr(text.response_offset)))
      s.ids.push_back(id);
    // A Jinja template's rendering ends the turn itself (<|im_end|>, <|eot_id|>, ...).
    if (opts.kind != data::ChatTemplateKind::kJinja) s.ids.push_back(tok.eos_id());
    if (static_cast<int64_t>(s.ids.size()) > max_len) s.ids.resize(max_len);
    out.push_back(std::move(s));
  }
  if (dropped) *dropped = n_dropped;
  return out;
}

namespace {
// Fills row b of the batch tensors with `samples` placed one after the other.
void fill_row(int64_t b, const std::vector<const SftSample*>& samples, int64_t* inputs,
              int64_t* targets, float* mask, int64_t* positions, int64_t* segment, int64_t T,
              int64_t* n_loss, int64_t* n_tok) {
  int64_t t0 = 0;
  for (size_t k = 0; k < samples.size(); ++k) {
    const SftSample& s = *samples[k];
    const int64_t n = static_cast<int64_t>(s.ids.size());
    for (int64_t i = 0; i < n && t0 + i < T; ++i) {
      const int64_t t = b * T + t0 + i;
      inputs[t] = s.ids[i];
      positions[t] = i;
      segment[t] = static_cast<int64_t>(k);
      ++*n_tok;
      // Position i predicts ids[i+1]; it counts when that token is in the response (an
      // assistant turn of a multi-turn sample).
      if (i + 1 < n && (s.trained.empty() ? i + 1 >= s.n_prompt : s.trained[i + 1] != 0)) {
        targets[t] = s.ids[i + 1];
        mask[t] = 1.f;
        ++*n_loss;
      }
    }
    t0 += n;
  }
}
}  // namespace

SftBatch make_padded_batch(const std::vector<const SftSample*>& samples, int64_t pad_id) {
  std::vector<std::vector<const SftSample*>> rows;
  int64_t T = 1;
  for (const auto* s : samples) {
    rows.push_back({s});
    T = std::max<int64_t>(T, s->ids.size());
  }
  SftBatch b = make_packed_batch(rows, T, pad_id);
  b.attn_mask = torch::Tensor();  // one sample per row: the default causal mask is exact
  return b;
}

SftBatch make_packed_batch(const std::vector<std::vector<const SftSample*>>& rows, int64_t row_len,
                           int64_t pad_id) {
  const int64_t B = static_cast<int64_t>(rows.size()), T = row_len;
  SftBatch b;
  b.inputs = torch::full({B, T}, pad_id, torch::kLong);
  b.targets = torch::zeros({B, T}, torch::kLong);
  b.loss_mask = torch::zeros({B, T}, torch::kFloat);
  b.positions = torch::arange(T, torch::kLong).unsqueeze(0).repeat({B, 1});
  auto segment = torch::full({B, T}, -1, torch::kLong);  // -1: padding
  for (int64_t r = 0; r < B; ++r)
    fill_row(r, rows[r], b.inputs.data_ptr<int64_t>(), b.targets.data_ptr<int64_t>(),
             b.loss_mask.data_ptr<float>(), b.positions.data_ptr<int64_t>(),
             segment.data_ptr<int64_t>(), T, &b.n_loss_tokens, &b.n_tokens);
  b.token_mask = segment >= 0;
  // Query t may attend key s <= t of its own sample. Every query (padding too) may
  // attend itself, so no softmax row is empty.
  auto same = segment.unsqueeze(2) == segment.unsqueeze(1);  // [B, T, T]
  auto causal = torch::ones({T, T}, torch::kBool).tril();
  b.attn_mask = (same & causal) | torch::eye(T, torch::kBool);
  return b;
}

std::vector<std::vector<int64_t>> pack_rows(const std::vector<const SftSample*>& order,
                                            int64_t row_len) {
  std::vector<std::vector<int64_t>> rows;
  int64_t used = row_len;  // forces a new row first
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t n = std::min<int64_t>(order[i]->ids.size(), row_len);
    if (used + n > row_len) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(static_cast<int64_t>(i));
    used += n;
  }
  return rows;
}

}  // namespace r1kit::sft
