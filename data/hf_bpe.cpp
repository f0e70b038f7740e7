// The BPE model (see hf_bpe.h).
#include "data/hf_bpe.h"

#include <queue>

#include "data/hf_normalizer.h"
#include "data/hf_text.h"

namespace r1kit::data::hf {
namespace {

using nlohmann::json;

// One queued merge: the pair starting at symbol `pos` with merge rank `rank`.
struct QueuedMerge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  bool operator>(const QueuedMerge& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

struct BpeSymbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

Status parse_vocab(const json& vocab, const std::string& where, StringIdMap& out,
                   std::vector<std::string>& by_id, std::vector<bool>& has_id) {
  if (!vocab.is_object()) return InvalidArgument("{}.vocab: must be an object", where);
  out.reserve(vocab.size());
  // The id -> token table is as long as the largest id: a few-byte file naming id 10^9
  // asked for 32 GB (found by fuzz/tokenizer_json). Real vocabularies number their
  // tokens 0..N-1; gaps of up to kMaxVocabGap ids are allowed.
  constexpr int64_t kMaxVocabGap = 1 << 16;
  const int64_t max_id = static_cast<int64_t>(vocab.size()) + kMaxVocabGap;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX)
      return InvalidArgument("{}.vocab['{}']: id must be a non-negative integer", where, it.key());
    if (it.value().get<int64_t>() >= max_id)
      return InvalidArgument("{}.vocab['{}']: id {} is far past the {} tokens of the vocabulary "
                             "(ids run from 0; at most {} may be unused)",
                             where, it.key(), it.value().get<int64_t>(), vocab.size(), kMaxVocabGap);
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    out[it.key()] = id;
    if (static_cast<size_t>(id) >= by_id.size()) {
      by_id.resize(id + 1);
      has_id.resize(id + 1, false);
    }
    by_id[id] = it.key();
    has_id[id] = true;
  }
  return OkStatus();
}

}  // namespace

Status BpeModel::add_merge(std::string_view a, std::string_view b, int32_t rank,
                           const std::string& where) {
  const int32_t ia = token_to_id(a), ib = token_to_id(b);
  if (ia < 0 || ib < 0)
    return InvalidArgument("{}.merges[{}]: '{} {}': '{}' is not in the vocabulary", where, rank, a,
                           b, ia < 0 ? a : b);
  std::string joined(a);
  joined += b.substr(b.compare(0, prefix_.size(), prefix_) == 0 ? prefix_.size() : 0);
  const int32_t id = token_to_id(joined);
  if (id < 0)
    return InvalidArgument("{}.merges[{}]: the merged token '{}' is not in the vocabulary", where,
                           rank, joined);
  merges_[pair_key(ia, ib)] = {rank, id};
  return OkStatus();
}

StatusOr<std::unique_ptr<BpeModel>> BpeModel::parse(const json& j, const std::string& where) {
  ASSIGN_OR_RETURN(const std::string type, json_type(j, where));
  if (type != "BPE")
    return InvalidArgument("{}: unsupported model type '{}' (only BPE; docs/tokenizers.md)", where,
                           type);
  if (j.contains("dropout") && !j["dropout"].is_null() &&
      !(j["dropout"].is_number() && j["dropout"].get<double>() == 0.0))
    return InvalidArgument("{}: dropout={} is not supported (r1kit encodes deterministically)",
                           where, j["dropout"].dump());
  auto m = std::unique_ptr<BpeModel>(new BpeModel());
  if (!j.contains("vocab")) return InvalidArgument("{}: BPE needs a 'vocab'", where);
  RETURN_IF_ERROR(parse_vocab(j["vocab"], where, m->vocab_, m->vocab_r_, m->has_id_));
  auto opt_string = [&](const char* key, std::string& out) -> Status {
    if (!j.contains(key) || j[key].is_null()) return OkStatus();
    ASSIGN_OR_RETURN(out, json_string(j, key, where));
    return OkStatus();
  };
  RETURN_IF_ERROR(opt_string("continuing_subword_prefix", m->prefix_));
  RETURN_IF_ERROR(opt_string("end_of_word_suffix", m->suffix_));
  std::string unk;
  RETURN_IF_ERROR(opt_string("unk_token", unk));
  if (!unk.empty()) {
    m->unk_id_ = m->token_to_id(unk);
    if (m->unk_id_ < 0)
      return InvalidArgument("{}: unk_token '{}' is not in the vocabulary", where, unk);
  }
  ASSIGN_OR_RETURN(m->byte_fallback_, json_bool(j, "byte_fallback", where, false));
  ASSIGN_OR_RETURN(m->ignore_merges_, json_bool(j, "ignore_merges", where, false));
  ASSIGN_OR_RETURN(m->fuse_unk_, json_bool(j, "fuse_unk", where, false));
  for (int b = 0; b < 256; ++b) m->byte_ids_[b] = m->token_to_id(fmt::format("<0x{:02X}>", b));
  const json& merges = j.contains("merges") ? j["merges"] : json::array();
  if (!merges.is_array()) return InvalidArgument("{}.merges: must be an array", where);
  m->merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    const auto rank = static_cast<int32_t>(i);
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      RETURN_IF_ERROR(m->add_merge(e[0].get_ref<const std::string&>(),
                                   e[1].get_ref<const std::string&>(), rank, where));
      continue;
    }
    static const std::string kNotAString;
    const std::string& s = e.is_string() ? e.get_ref<const std::string&>() : kNotAString;
    const size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      return InvalidArgument("{}.merges[{}]: {} is neither \"a b\" nor [\"a\", \"b\"]", where, i,
                             e.dump());
    const std::string_view sv = s;
    RETURN_IF_ERROR(m->add_merge(sv.substr(0, sp), sv.substr(sp + 1), rank, where));
  }
  return m;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_r_.size() || !has_id_[id]) return nullptr;
  return &vocab_r_[id];
}

void BpeModel::split_word(std::string_view word, std::vector<int32_t>& ids) const {
  bool pending_unk = false;
  std::string s;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = std::min(utf8_len(static_cast<unsigned char>(word[pos])), word.size() - pos);
    s.assign(pos > 0 ? prefix_ : std::string());
    s.append(word.substr(pos, len));
    pos += len;
    if (pos == word.size()) s += suffix_;
    if (const int32_t id = token_to_id(s); id >= 0) {
      if (pending_unk) ids.push_back(unk_id_);
      pending_unk = false;
      ids.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (const char c : s) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ < 0) continue;
    if (pending_unk && !fuse_unk_) ids.push_back(unk_id_);
    pending_unk = true;
  }
  if (pending_unk) ids.push_back(unk_id_);
}

void BpeModel::merge_all(std::vector<int32_t>& ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  std::vector<BpeSymbol> sym(n);
  for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<QueuedMerge, std::vector<QueuedMerge>, std::greater<>> queue;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    const auto it = merges_.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    BpeSymbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    const BpeSymbol right = sym[left.next];
    const auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    sym[left.next].alive = false;
    left.id = top.new_id;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (const BpeSymbol& s : sym) {
    if (s.alive) ids.push_back(s.id);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t id = token_to_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  split_word(word, ids);
  merge_all(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace r1kit::data::hf
