// The Jinja lexer (jinja_ast.h): template text and tags, with Jinja2's whitespace rules
// as transformers configures them (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "data/jinja_ast.h"

namespace r1kit::data::jinja {
namespace {

// Jinja2 reads "\r\n" and "\r" as "\n" and drops one trailing newline.
std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Python's str.rstrip() (Unicode whitespace).
std::string rstrip_py(const std::string& s) {
  std::vector<char32_t> cps = utf8_decode(s);
  while (!cps.empty() && is_py_space(cps.back())) cps.pop_back();
  return utf8_encode(cps);
}

bool all_py_space(std::string_view s) {
  if (s.empty()) return false;
  for (char32_t c : utf8_decode(s))
    if (!is_py_space(c)) return false;
  return true;
}

class Lexer {
 public:
  Lexer(std::string src, const std::string& name) : src_(std::move(src)), name_(name) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  StatusOr<std::vector<Token>> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos, tag - pos);
      if (mod == '-') {
        text = rstrip_py(text);
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: only whitespace between the line's start and the tag goes.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && all_py_space(std::string_view(text).substr(l_pos)))
          text.resize(l_pos);
      }
      emit_text(text, pos);
      const size_t body = tag + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      StatusOr<size_t> end = kind == '#' ? skip_comment(tag, body) : lex_tag(tag, body, kind);
      if (!end.ok()) return end.status();
      pos = *end;
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back(Token{Token::Type::kEof, "", pos_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  SourcePos pos_of(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return SourcePos{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  Status error(size_t offset, std::string_view what) const {
    const SourcePos p = pos_of(offset);
    return InvalidArgument("{}:{}:{}: {}", name_, p.line, p.col, what);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  void emit_text(std::string text, size_t offset) {
    if (!text.empty())
      tokens_.push_back(Token{Token::Type::kText, std::move(text), pos_of(offset)});
  }

  // After "-#}" all whitespace goes; after "#}" one newline (trim_blocks); "+#}" keeps it.
  StatusOr<size_t> skip_comment(size_t tag, size_t body) const {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) return error(tag, "missing end of comment tag");
    return after_end(close, 2, close > body && src_[close - 1] == '-',
                     close > body && src_[close - 1] == '+', /*trim_newline=*/true);
  }

  size_t after_end(size_t close, size_t len, bool minus, bool plus, bool trim_newline) const {
    size_t p = close + len;
    if (minus) {
      while (p < src_.size() && std::isspace(static_cast<unsigned char>(src_[p]))) ++p;
    } else if (!plus && trim_newline && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  // Tokens of a {{ }} or {% %} tag; returns the offset after its end.
  StatusOr<size_t> lex_tag(size_t tag, size_t p, char kind) {
    const bool block = kind == '%';
    tokens_.push_back(Token{block ? Token::Type::kBlockBegin : Token::Type::kVarBegin,
                            block ? "{%" : "{{", pos_of(tag)});
    const char close0 = block ? '%' : '}';
    int depth = 0;
    while (true) {
      while (p < src_.size() && std::isspace(static_cast<unsigned char>(src_[p]))) ++p;
      if (p >= src_.size()) return error(tag, "unexpected end of template inside a tag");
      if (depth == 0) {
        const bool minus =
            src_[p] == '-' && p + 2 < src_.size() && src_[p + 1] == close0 && src_[p + 2] == '}';
        const bool plus = block && src_[p] == '+' && p + 2 < src_.size() && src_[p + 1] == '%' &&
                          src_[p + 2] == '}';
        const bool plain = src_[p] == close0 && p + 1 < src_.size() && src_[p + 1] == '}';
        if (minus || plus || plain) {
          const size_t close = (minus || plus) ? p + 1 : p;
          tokens_.push_back(Token{block ? Token::Type::kBlockEnd : Token::Type::kVarEnd,
                                  block ? "%}" : "}}", pos_of(p)});
          return after_end(close, 2, minus, plus, /*trim_newline=*/block);
        }
      }
      ASSIGN_OR_RETURN(p, lex_one(p, &depth));
    }
  }

  StatusOr<size_t> lex_one(size_t p, int* depth) {
    const char c = src_[p];
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(p);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = p;
      while (e < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
        ++e;
      tokens_.push_back(Token{Token::Type::kName, src_.substr(p, e - p), pos_of(p)});
      return e;
    }
    if (c == '\'' || c == '"') return lex_string(p);
    static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                       "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                       ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};
    for (const char* op : kOps) {
      const std::string_view o(op);
      if (src_.compare(p, o.size(), o) != 0) continue;
      if (o == "(" || o == "[" || o == "{") ++*depth;
      if (o == ")" || o == "]" || o == "}") {
        if (*depth == 0) return error(p, fmt::format("unexpected '{}'", o));
        --*depth;
      }
      tokens_.push_back(Token{Token::Type::kOp, std::string(o), pos_of(p)});
      return p + o.size();
    }
    return error(p, fmt::format("unexpected character '{}'", c));
  }

  StatusOr<size_t> lex_number(size_t p) {
    auto digits = [&](size_t q) {
      while (q < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
        ++q;
      return q;
    };
    size_t e = digits(p);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        e = digits(q);
        is_float = true;
      }
    }
    std::string text = src_.substr(p, e - p);
    std::erase(text, '_');
    tokens_.push_back(
        Token{is_float ? Token::Type::kFloat : Token::Type::kInt, std::move(text), pos_of(p)});
    return e;
  }

  // Python's unicode-escape decoding of a string literal.
  StatusOr<size_t> lex_string(size_t p) {
    const char q = src_[p];
    std::string out;
    size_t i = p + 1;
    for (; i < src_.size() && src_[i] != q; ++i) {
      if (src_[i] != '\\' || i + 1 >= src_.size()) {
        out += src_[i];
        continue;
      }
      const char e = src_[++i];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;  // a line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n >= src_.size()) return error(i, "truncated \\" + std::string(1, e) + " escape");
          const std::string hex = src_.substr(i + 1, n);
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            return error(i, "bad \\" + std::string(1, e) + " escape");
          utf8_append(out, static_cast<char32_t>(std::stoul(hex, nullptr, 16)));
          i += n;
          break;
        }
        default:  // Python keeps unknown escapes as they are
          out += '\\';
          out += e;
      }
    }
    if (i >= src_.size()) return error(p, "unterminated string literal");
    tokens_.push_back(Token{Token::Type::kString, std::move(out), pos_of(p)});
    return i + 1;
  }

  std::string src_;
  const std::string& name_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

StatusOr<std::vector<Token>> lex_template(std::string_view source, const std::string& source_name) {
  Lexer lexer(normalize_newlines(source), source_name);
  return lexer.run();
}

}  // namespace r1kit::data::jinja
