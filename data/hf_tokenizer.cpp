// The Hugging Face tokenizer.json tokenizer (see hf_tokenizer.h).
#include "data/hf_tokenizer.h"

#include <algorithm>

#include "core/json.h"
#include "core/logging.h"
#include "data/hf_text.h"

namespace r1kit::data::hf {
namespace {

using nlohmann::json;

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t pos = s.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
  size_t len = 0;
  return is_rust_word(utf8_decode(s, pos, &len));
}

bool starts_with_word(std::string_view s) {
  size_t len = 0;
  return !s.empty() && is_rust_word(utf8_decode(s, 0, &len));
}

// Start of the whitespace run that ends `s` (s.size() when none).
size_t trailing_space_start(std::string_view s) {
  size_t start = s.size();
  while (start > 0) {
    size_t pos = start - 1, len = 0;
    while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) --pos;
    if (!is_rust_whitespace(utf8_decode(s, pos, &len))) break;
    start = pos;
  }
  return start;
}

// Length of the whitespace run that starts `s`.
size_t leading_space_len(std::string_view s) {
  size_t pos = 0, len = 0;
  while (pos < s.size() && is_rust_whitespace(utf8_decode(s, pos, &len))) pos += len;
  return pos;
}

// The id named by a tokenizer_config.json entry (a string or {"content": ...}); -1 for null.
StatusOr<int> config_token(const json& v, const char* key, const HfTokenizer& tok,
                           const std::string& name) {
  if (v.is_null()) return -1;
  std::string content;
  if (v.is_string())
    content = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v["content"].is_string())
    content = v["content"].get<std::string>();
  else
    return InvalidArgument("{}: {} must be a string, an object with 'content', or null", name, key);
  const int id = tok.piece_to_id(content);
  if (id < 0)
    return InvalidArgument("{}: {} '{}' is not in the tokenizer's vocabulary", name, key, content);
  return id;
}

}  // namespace

void AddedTokenTrie::insert(std::string_view text, int token) {
  int node = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    auto& next = nodes_[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, 0),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it != next.end() && it->first == c) {
      node = it->second;
      continue;
    }
    const int created = static_cast<int>(nodes_.size());
    next.insert(it, {c, created});
    nodes_.emplace_back();
    node = created;
  }
  nodes_[node].token = token;
}

std::pair<int, size_t> AddedTokenTrie::longest_at(std::string_view text, size_t pos) const {
  std::pair<int, size_t> best{-1, pos};
  int node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto& next = nodes_[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, 0),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it == next.end() || it->first != c) break;
    node = it->second;
    if (nodes_[node].token >= 0) best = {nodes_[node].token, i + 1};
  }
  return best;
}

Status HfTokenizer::parse_added_tokens(const json& j, const std::string& where) {
  if (j.is_null()) return OkStatus();
  if (!j.is_array()) return InvalidArgument("{}: must be an array", where);
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!j[i].is_object()) return InvalidArgument("{}: must be an object", at);
    AddedToken t;
    ASSIGN_OR_RETURN(t.content, json_string(j[i], "content", at));
    ASSIGN_OR_RETURN(const int64_t id, json_int(j[i], "id", at));
    if (id < 0 || id > INT32_MAX) return InvalidArgument("{}: id {} out of range", at, id);
    t.id = static_cast<int32_t>(id);
    ASSIGN_OR_RETURN(t.special, json_bool(j[i], "special", at, false));
    ASSIGN_OR_RETURN(t.lstrip, json_bool(j[i], "lstrip", at, false));
    ASSIGN_OR_RETURN(t.rstrip, json_bool(j[i], "rstrip", at, false));
    ASSIGN_OR_RETURN(t.single_word, json_bool(j[i], "single_word", at, false));
    ASSIGN_OR_RETURN(t.normalized, json_bool(j[i], "normalized", at, !t.special));
    if (t.content.empty()) continue;  // the Rust library ignores empty added tokens
    add_token(std::move(t), at);
  }
  return OkStatus();
}

void HfTokenizer::add_token(AddedToken t, const std::string& where) {
  for (AddedToken& seen : added_) {
    if (seen.content == t.content) {  // listed again: the later flags win, the id stays
      t.id = seen.id;
      seen = std::move(t);
      return;
    }
  }
  const int32_t file_id = t.id;
  t.id = model_->token_to_id(t.content);
  if (t.id < 0) t.id = next_added_id_++;
  if (t.id != file_id)
    R1_LOG(warn, "{}: '{}' has id {} in the file but gets {} (as in the Rust library)", where,
           t.content, file_id, t.id);
  added_.push_back(std::move(t));
}

// Builds the lookup tables of the added tokens (after the normalizer is known).
static void index_added(const std::vector<AddedToken>& added, const Normalizer* normalizer,
                        StringIdMap& ids, std::vector<int>& index_by_id,
                        std::vector<std::string>& decoded, AddedTokenTrie& raw,
                        AddedTokenTrie& normalized) {
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& t = added[i];
    ids[t.content] = t.id;
    if (static_cast<size_t>(t.id) >= index_by_id.size()) index_by_id.resize(t.id + 1, -1);
    index_by_id[t.id] = static_cast<int>(i);
    std::string text = t.content;
    if (t.normalized && normalizer != nullptr) normalizer->normalize(text);
    (t.normalized ? normalized : raw).insert(text, static_cast<int>(i));
    decoded.push_back(std::move(text));
  }
}

StatusOr<std::shared_ptr<const HfTokenizer>> HfTokenizer::parse(std::string json_text,
                                                                const std::string& config_text,
                                                                const std::string& name) {
  json j = parse_json_or_discarded(json_text);
  if (j.is_discarded() || !j.is_object())
    return DataLoss("{}: not a JSON object (is it a tokenizer.json?)", name);
  for (const char* key : {"truncation", "padding"}) {
    if (j.contains(key) && !j[key].is_null())
      return InvalidArgument("{}: {} is set ({}); r1kit supports only null here", name, key,
                             j[key].dump());
  }
  auto tok = std::shared_ptr<HfTokenizer>(new HfTokenizer());
  auto get = [&](const char* key) { return j.contains(key) ? j[key] : json(); };
  ASSIGN_OR_RETURN(tok->model_, BpeModel::parse(get("model"), name + ": model"));
  ASSIGN_OR_RETURN(tok->normalizer_, parse_normalizer(get("normalizer"), name + ": normalizer"));
  ASSIGN_OR_RETURN(tok->pre_tokenizer_,
                   parse_pre_tokenizer(get("pre_tokenizer"), name + ": pre_tokenizer"));
  ASSIGN_OR_RETURN(tok->decoder_, parse_decoder(get("decoder"), name + ": decoder"));
  ASSIGN_OR_RETURN(tok->post_,
                   parse_post_processor(get("post_processor"), name + ": post_processor"));
  tok->next_added_id_ = tok->model_->vocab_len();
  RETURN_IF_ERROR(tok->parse_added_tokens(get("added_tokens"), name + ": added_tokens"));
  index_added(tok->added_, tok->normalizer_.get(), tok->added_ids_, tok->added_index_by_id_,
              tok->added_decoded_, tok->raw_trie_, tok->normalized_trie_);
  tok->ids_.vocab_size =
      std::max(tok->model_->max_id() + 1, static_cast<int32_t>(tok->added_index_by_id_.size()));
  tok->ids_.unk = tok->model_->unk_id();
  tok->json_text_ = std::move(json_text);
  RETURN_IF_ERROR(tok->parse_config(config_text, name));
  return std::shared_ptr<const HfTokenizer>(std::move(tok));
}

Status HfTokenizer::parse_config(const std::string& config_text, const std::string& name) {
  auto named = [&](std::initializer_list<std::string_view> names) {
    for (const std::string_view n : names) {
      const auto it = added_ids_.find(n);
      if (it != added_ids_.end() && added_[added_index_by_id_[it->second]].special)
        return it->second;
    }
    return -1;
  };
  ids_.bos =
      !post_.prefix.empty()
          ? post_.prefix.front()
          : named({"<s>", "<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<|startoftext|>"});
  ids_.eos = !post_.suffix.empty()
                 ? post_.suffix.back()
                 : named({"</s>", "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<|endoftext|>"});
  if (config_text.empty()) return OkStatus();
  const std::string where = name + " (tokenizer_config.json)";
  const json c = parse_json_or_discarded(config_text);
  if (c.is_discarded() || !c.is_object()) return DataLoss("{}: not a JSON object", where);
  const std::pair<const char*, int*> fields[] = {{"bos_token", &ids_.bos},
                                                 {"eos_token", &ids_.eos},
                                                 {"pad_token", &ids_.pad},
                                                 {"unk_token", &ids_.unk}};
  for (const auto& [key, out] : fields) {
    if (!c.contains(key)) continue;
    ASSIGN_OR_RETURN(*out, config_token(c[key], key, *this, where));
  }
  return OkStatus();
}

void HfTokenizer::split_added(const Segment& seg, const AddedTokenTrie& trie,
                              std::vector<Segment>& out) const {
  const std::string_view text = seg.text;
  auto emit = [&](size_t b, size_t e, int32_t id) {
    if (e > b) out.push_back({std::string(text.substr(b, e - b)), id, seg.at_start && b == 0});
  };
  if (trie.empty()) {
    emit(0, text.size(), -1);
    return;
  }
  size_t done = 0;  // end of the last piece emitted
  for (size_t pos = 0; pos < text.size();) {
    const auto [index, end] = trie.longest_at(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = added_[index];
    size_t start = pos, stop = end;
    pos = end;
    if (t.single_word && ((start > 0 && ends_with_word(text.substr(0, start))) ||
                          (stop < text.size() && starts_with_word(text.substr(stop)))))
      continue;
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), done);
    if (t.rstrip) stop += leading_space_len(text.substr(stop));
    if (done < start) emit(done, start, -1);
    out.push_back(
        {std::string(text.substr(start, stop - start)), t.id, seg.at_start && start == 0});
    done = stop;
  }
  if (done < text.size()) emit(done, text.size(), -1);
}

void HfTokenizer::encode_words(const Segment& seg, std::vector<int32_t>& ids) const {
  std::vector<Piece> pieces{{seg.text, seg.at_start}};
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->pre_tokenize(pieces);
  for (const Piece& p : pieces) model_->tokenize(p.text, ids);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<Segment> raw, normalized;
  split_added({utf8_replace_invalid(text), -1, true}, raw_trie_, raw);
  for (Segment& s : raw) {
    if (s.id >= 0) {
      normalized.push_back(std::move(s));
      continue;
    }
    if (normalizer_ != nullptr) normalizer_->normalize(s.text);
    split_added(s, normalized_trie_, normalized);
  }
  std::vector<int32_t> ids;
  if (add_special) ids = post_.prefix;
  for (const Segment& s : normalized) {
    if (s.id >= 0)
      ids.push_back(s.id);
    else
      encode_words(s, ids);
  }
  if (add_special) ids.insert(ids.end(), post_.suffix.begin(), post_.suffix.end());
  return ids;
}

const AddedToken* HfTokenizer::added_by_id(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= added_index_by_id_.size()) return nullptr;
  const int index = added_index_by_id_[id];
  return index < 0 ? nullptr : &added_[index];
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool keep_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (!keep_special && id >= 0 && (id == ids_.bos || id == ids_.eos || id == ids_.pad)) continue;
    if (const AddedToken* t = added_by_id(id)) {
      tokens.push_back(added_decoded_[t - added_.data()]);
    } else if (const std::string* s = model_->id_to_token(id)) {
      tokens.push_back(*s);
    }
  }
  if (decoder_ == nullptr) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i > 0 ? " " : "") + tokens[i];
    return out;
  }
  std::string out;
  for (const std::string& t : decoder_->decode_chain(std::move(tokens))) out += t;
  return out;
}

std::string HfTokenizer::id_to_piece(int id) const {
  if (const AddedToken* t = added_by_id(id)) return t->content;
  const std::string* s = model_->id_to_token(id);
  return s != nullptr ? *s : std::string();
}

int HfTokenizer::piece_to_id(std::string_view piece) const {
  const auto it = added_ids_.find(piece);
  return it != added_ids_.end() ? it->second : model_->token_to_id(piece);
}

}  // namespace r1kit::data::hf
