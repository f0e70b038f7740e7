// Tests for data/tokenizer.h: training, round trips, byte fallback, digit splitting,
// user-defined symbols, error Statuses for bad models and options, and that LibTorch
// (and its libprotobuf) still work in a process that used SentencePiece through the
// dlopened shim.
#include "data/tokenizer.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

namespace fs = std::filesystem;

// A small corpus: arithmetic facts and English sentences, deterministic.
std::vector<std::string> make_corpus() {
  std::vector<std::string> lines;
  const char* words[] = {"the",   "answer",   "is",     "think",  "step", "first",  "then",
                         "add",   "multiply", "number", "result", "so",   "we",     "get",
                         "check", "carry",    "digit",  "total",  "sum",  "product"};
  uint32_t x = 12345;
  auto next = [&x]() {
    x = x * 1103515245u + 12345u;
    return (x >> 16) & 0x7fff;
  };
  for (int i = 0; i < 300; ++i) {
    const int a = static_cast<int>(next() % 100), b = static_cast<int>(next() % 100);
    lines.push_back(std::to_string(a) + "+" + std::to_string(b) + "=" + std::to_string(a + b));
    std::string sentence;
    for (int w = 0; w < 8; ++w) {
      if (w > 0) sentence += ' ';
      sentence += words[next() % 20];
    }
    lines.push_back(sentence + ".");
    if (i % 10 == 0) {
      lines.push_back("<think> " + std::to_string(a) + "*" + std::to_string(b) + "=" +
                      std::to_string(a * b) + " </think> <answer> " + std::to_string(a * b) +
                      " </answer>");
    }
  }
  return lines;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("r1kit_tokenizer_test_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    std::vector<std::string> corpus = make_corpus();
    // Half the corpus from a file, half from memory: both sources get used.
    const std::string corpus_path = (*dir_ / "corpus.txt").string();
    {
      std::ofstream f(corpus_path);
      for (size_t i = 0; i < corpus.size() / 2; ++i) f << corpus[i] << "\n";
    }
    TokenizerTrainOptions opts;
    opts.input_files = {corpus_path};
    opts.lines.assign(corpus.begin() + corpus.size() / 2, corpus.end());
    opts.vocab_size = 360;
    opts.num_threads = 1;
    model_path_ = new std::string((*dir_ / "sub" / "tok.model").string());
    train_status_ = new Status(Tokenizer::train(opts, *model_path_));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete model_path_;
    delete train_status_;
  }
  void SetUp() override {
    ASSERT_TRUE(train_status_->ok()) << train_status_->to_string();
    auto tok = Tokenizer::load(*model_path_);
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    tok_.emplace(*tok);
  }

  std::vector<std::string> pieces(const std::vector<int32_t>& ids) const {
    std::vector<std::string> out;
    for (int32_t id : ids) out.push_back(tok_->id_to_piece(id));
    return out;
  }

  static fs::path* dir_;
  static std::string* model_path_;
  static Status* train_status_;
  std::optional<Tokenizer> tok_;
};
fs::path* TokenizerTest::dir_ = nullptr;
std::string* TokenizerTest::model_path_ = nullptr;
Status* TokenizerTest::train_status_ = nullptr;

TEST_F(TokenizerTest, VocabularyAndReservedIds) {
  // 4 reserved + 4 user symbols + 256 bytes + the corpus's characters, at most 360.
  EXPECT_GT(tok_->vocab_size(), 264);
  EXPECT_LE(tok_->vocab_size(), 360);
  EXPECT_EQ(tok_->unk_id(), 0);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->pad_id(), 3);
  EXPECT_EQ(tok_->id_to_piece(0), "<unk>");
  EXPECT_EQ(tok_->id_to_piece(1), "<s>");
  EXPECT_EQ(tok_->id_to_piece(2), "</s>");
  EXPECT_EQ(tok_->id_to_piece(3), "<pad>");
  EXPECT_EQ(tok_->piece_to_id("<unk>"), 0);
  EXPECT_EQ(tok_->piece_to_id("</s>"), 2);
  EXPECT_EQ(tok_->piece_to_id("no-such-piece-anywhere"), -1);
  EXPECT_EQ(tok_->piece_to_id(""), -1);
  EXPECT_EQ(tok_->id_to_piece(-1), "");
  EXPECT_EQ(tok_->id_to_piece(tok_->vocab_size()), "");
  // Byte pieces exist for every byte value.
  EXPECT_GE(tok_->piece_to_id("<0x0A>"), 0);
  EXPECT_GE(tok_->piece_to_id("<0xFF>"), 0);
}

TEST_F(TokenizerTest, UserSymbolsAreSingleIds) {
  for (const char* sym : {"<think>", "</think>", "<answer>", "</answer>"}) {
    const auto ids = tok_->encode(sym);
    ASSERT_EQ(ids.size(), 1u) << sym;
    EXPECT_EQ(ids[0], tok_->piece_to_id(sym)) << sym;
    EXPECT_EQ(tok_->id_to_piece(ids[0]), sym);
  }
  // Inside text, glued to other characters, still one id each.
  const auto ids = tok_->encode("x<think>7</think>y");
  const int think = tok_->piece_to_id("<think>"), end_think = tok_->piece_to_id("</think>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), think), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), end_think), 1);
  EXPECT_EQ(tok_->decode(ids), "x<think>7</think>y");
}

TEST_F(TokenizerTest, DigitsAreSplit) {
  const auto ids = tok_->encode("12345+678=13023");
  const std::vector<std::string> expected = {"1", "2", "3", "4", "5", "+", "6", "7",
                                             "8", "=", "1", "3", "0", "2", "3"};
  EXPECT_EQ(pieces(ids), expected);
}

TEST_F(TokenizerTest, NoBosOrEosAdded) {
  const auto ids = tok_->encode("the answer");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), tok_->bos_id());
  EXPECT_NE(ids.back(), tok_->eos_id());
  EXPECT_TRUE(tok_->encode("").empty());
}

TEST_F(TokenizerTest, RoundTripsExactly) {
  const std::vector<std::string> texts = {
      "the answer is 46",
      "12+34=46",
      "  leading spaces, double  spaces and trailing ",
      "line one\nline two\n\ttabbed\r\n",
      "User: What is 23*7+5?. Assistant: <think> 23*7=161 </think> <answer> 166 </answer>",
      "héllo wörld — naïve café",
      "日本語のテキスト and emoji 🙂🚀",
      "Zebra QUIZ xylophone {}[]|~`^",  // capitals and symbols never seen in the corpus
  };
  for (const std::string& t : texts) {
    const auto ids = tok_->encode(t);
    EXPECT_EQ(tok_->decode(ids), t) << t;
    for (int32_t id : ids) {
      EXPECT_NE(id, tok_->unk_id()) << "byte fallback should avoid <unk> in: " << t;
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tok_->vocab_size());
    }
  }
}

TEST_F(TokenizerTest, UnseenCharactersFallBackToBytes) {
  // U+65E5 (日) is E6 97 A5 in UTF-8 and never occurs in the corpus.
  const auto ids = tok_->encode("日");
  EXPECT_EQ(pieces(ids), (std::vector<std::string>{"<0xE6>", "<0x97>", "<0xA5>"}));
  EXPECT_EQ(tok_->decode(ids), "日");
}

TEST_F(TokenizerTest, DecodeIsConcatenative) {
  // No dummy prefix: decoding a completion alone gives what it adds after its prompt.
  const std::string prompt = "User: 2+2. Assistant:";
  const std::string completion = " <think> 2+2=4 </think> <answer> 4 </answer>";
  const auto p = tok_->encode(prompt);
  const auto c = tok_->encode(completion);
  std::vector<int32_t> both = p;
  both.insert(both.end(), c.begin(), c.end());
  EXPECT_EQ(tok_->decode(c), completion);
  EXPECT_EQ(tok_->decode(both), prompt + completion);
}

TEST_F(TokenizerTest, DecodeSkipsOutOfRangeAndControlIds) {
  const auto ids = tok_->encode("sum 7");
  std::vector<int32_t> noisy = {-1, tok_->bos_id()};
  noisy.insert(noisy.end(), ids.begin(), ids.end());
  noisy.push_back(tok_->vocab_size());
  noisy.push_back(1 << 30);
  noisy.push_back(tok_->eos_id());
  noisy.push_back(tok_->pad_id());
  EXPECT_EQ(tok_->decode(noisy), "sum 7");
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{-5, 100000}), "");
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{}), "");
}

TEST_F(TokenizerTest, LongTextNeedsTheSecondBufferRound) {
  // Decoding many short ids gives more bytes than the first guess for some inputs;
  // encoding NUL bytes and long text must also work.
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "🙂 " + std::to_string(i);
  const auto ids = tok_->encode(text);
  EXPECT_EQ(tok_->decode(ids), text);
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(tok_->decode(tok_->encode(with_nul)), with_nul);
}

TEST_F(TokenizerTest, CopiesShareTheModelAndOutliveTheOriginal) {
  std::optional<Tokenizer> copy;
  {
    Tokenizer original = *tok_;
    copy.emplace(original);
  }
  tok_.reset();
  EXPECT_EQ(copy->decode(copy->encode("the sum is 12")), "the sum is 12");
}

TEST_F(TokenizerTest, EncodeIsThreadSafe) {
  const std::string text = "then we add 123 and 456 to get 579 <think> ok </think>";
  const auto expected = tok_->encode(text);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (tok_->encode(text) != expected || tok_->decode(expected) != text) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST_F(TokenizerTest, SaveAndFromBytes) {
  const std::string bytes = tok_->model_bytes();
  ASSERT_FALSE(bytes.empty());
  std::ifstream f(*model_path_, std::ios::binary);
  const std::string on_disk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, on_disk);
  auto from_bytes = Tokenizer::from_bytes(bytes);
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().to_string();
  EXPECT_EQ(from_bytes->encode("12+34=46 the sum"), tok_->encode("12+34=46 the sum"));
  const std::string copy_path = (*dir_ / "copy" / "tokenizer.model").string();
  ASSERT_TRUE(tok_->save(copy_path).ok());
  auto reloaded = Tokenizer::load(copy_path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().to_string();
  EXPECT_EQ(reloaded->vocab_size(), tok_->vocab_size());
}

TEST_F(TokenizerTest, BadModelFilesGiveStatuses) {
  auto missing = Tokenizer::load((*dir_ / "missing.model").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.model"), std::string::npos);

  const std::string corrupt = (*dir_ / "corrupt.model").string();
  {
    std::ofstream f(corrupt, std::ios::binary);
    f << "this is not a protobuf \xff\xfe\x01 at all";
  }
  auto bad = Tokenizer::load(corrupt);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss) << bad.status().to_string();
  EXPECT_NE(bad.status().message().find("corrupt.model"), std::string::npos);

  // A truncated real model.
  const std::string bytes = tok_->model_bytes();
  const std::string truncated = (*dir_ / "truncated.model").string();
  {
    std::ofstream f(truncated, std::ios::binary);
    f << bytes.substr(0, bytes.size() / 2);
  }
  EXPECT_FALSE(Tokenizer::load(truncated).ok());

  const std::string empty = (*dir_ / "empty.model").string();
  { std::ofstream f(empty, std::ios::binary); }
  EXPECT_FALSE(Tokenizer::load(empty).ok());

  EXPECT_EQ(Tokenizer::load(dir_->string()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::from_bytes("garbage").status().code(), StatusCode::kDataLoss);
}

TEST(TokenizerTrainTest, RejectsBadOptions) {
  const testing::ScopedTempDir tmp("r1kit_never_written");
  const std::string out = tmp.join("never_written.model");
  TokenizerTrainOptions o;
  o.lines = {"a b c", "1+1=2"};

  TokenizerTrainOptions no_corpus;
  EXPECT_EQ(Tokenizer::train(no_corpus, out).code(), StatusCode::kInvalidArgument);

  TokenizerTrainOptions small = o;
  small.vocab_size = 200;  // < 256 bytes + 4 reserved + 4 symbols
  const Status s = Tokenizer::train(small, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("vocab_size=200"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("265"), std::string::npos) << s.to_string();

  TokenizerTrainOptions type = o;
  type.model_type = "wordpiece";
  EXPECT_NE(Tokenizer::train(type, out).message().find("wordpiece"), std::string::npos);

  TokenizerTrainOptions file = o;
  file.input_files = {"/nonexistent/corpus.txt"};
  const Status nf = Tokenizer::train(file, out);
  EXPECT_EQ(nf.code(), StatusCode::kNotFound);
  EXPECT_NE(nf.message().find("/nonexistent/corpus.txt"), std::string::npos);

  TokenizerTrainOptions comma = o;
  comma.user_defined_symbols = {"<a,b>"};
  EXPECT_EQ(Tokenizer::train(comma, out).code(), StatusCode::kInvalidArgument);

  TokenizerTrainOptions dup_ids = o;
  dup_ids.pad_id = 1;
  EXPECT_NE(Tokenizer::train(dup_ids, out).message().find("pad_id=1"), std::string::npos);

  TokenizerTrainOptions coverage = o;
  coverage.character_coverage = 0.0;
  EXPECT_EQ(Tokenizer::train(coverage, out).code(), StatusCode::kInvalidArgument);

  EXPECT_FALSE(fs::exists(out));
}

TEST(TokenizerTrainTest, SameOptionsGiveTheSameModel) {
  // A unigram model without byte fallback, trained twice: identical bytes.
  const testing::ScopedTempDir tmp("r1kit_tok_det");
  const fs::path& dir = tmp.path();
  TokenizerTrainOptions o;
  o.model_type = "unigram";
  o.byte_fallback = false;
  o.vocab_size = 60;
  o.num_threads = 1;
  for (int i = 0; i < 100; ++i) o.lines.push_back("the sum of " + std::to_string(i) + " is ok");
  ASSERT_TRUE(Tokenizer::train(o, (dir / "a.model").string()).ok());
  ASSERT_TRUE(Tokenizer::train(o, (dir / "b.model").string()).ok());
  auto a = Tokenizer::load((dir / "a.model").string());
  auto b = Tokenizer::load((dir / "b.model").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->model_bytes(), b->model_bytes());
  EXPECT_LE(a->vocab_size(), 60);
  // Without byte fallback an unseen character is <unk>.
  const auto ids = a->encode("Q");
  EXPECT_NE(std::find(ids.begin(), ids.end(), a->unk_id()), ids.end());
}

TEST(TokenizerLibraryTest, CandidatesFollowTheEnvironmentAndTheBinary) {
  const char* saved = std::getenv("R1KIT_SPM_LIB");
  const std::string saved_value = saved ? saved : "";
  ::setenv("R1KIT_SPM_LIB", "/opt/x/libcustom_spm.so", 1);
  EXPECT_EQ(spm_library_candidates(), std::vector<std::string>{"/opt/x/libcustom_spm.so"});
  ::unsetenv("R1KIT_SPM_LIB");
  const auto candidates = spm_library_candidates();
  ASSERT_FALSE(candidates.empty());
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  EXPECT_EQ(candidates[0], (exe_dir / "libr1kit_spm.so").string());
  if (saved) ::setenv("R1KIT_SPM_LIB", saved_value.c_str(), 1);
}

// The point of the dlopen shim: SentencePiece's bundled protobuf-lite 3.14 must not
// meet LibTorch's libprotobuf 3.21. After training and loading above (which abort on a
// version clash), tensors, modules and libprotobuf itself keep working, and none of
// the shim's or SentencePiece's symbols are visible in the global scope.
TEST_F(TokenizerTest, LibTorchAndProtobufWorkAfterTokenizerUse) {
  const auto ids = tok_->encode("12+34=46");
  ASSERT_EQ(ids.size(), 8u);

  torch::manual_seed(0);
  torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()));
  EXPECT_EQ(t.sum().item<int64_t>(), std::accumulate(ids.begin(), ids.end(), int64_t{0}));
  torch::nn::Linear linear(4, 3);
  torch::Tensor y = linear->forward(torch::ones({2, 4}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3}));
  torch::Tensor expected = linear->weight.sum(1) + linear->bias;  // [3]
  EXPECT_TRUE(torch::allclose(y[0], expected));
  EXPECT_TRUE(torch::allclose(y[1], expected));

  // The shim is private to its dlopen handle.
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "r1kit_spm_encode"), nullptr);
  // libprotobuf as the process sees it is LibTorch's 3.21, not SentencePiece's copy.
  void* version_check = dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VerifyVersionEiiPKc");
  if (version_check != nullptr) {
    Dl_info info{};
    ASSERT_NE(dladdr(version_check, &info), 0);
    const std::string lib = info.dli_fname ? info.dli_fname : "";
    EXPECT_NE(lib.find("libprotobuf"), std::string::npos) << lib;
    EXPECT_EQ(lib.find("sentencepiece"), std::string::npos) << lib;
    // Touch it: a 3.21 header/library check passes (a 3.14 library would abort here).
    auto verify = reinterpret_cast<void (*)(int, int, const char*)>(version_check);
    verify(3021000, 3021000, __FILE__);
  }
  // Serialization through LibTorch still works after SentencePiece parsed its protos.
  std::stringstream buf;
  torch::save(y, buf);
  torch::Tensor back;
  torch::load(back, buf);
  EXPECT_TRUE(torch::equal(back, y));
}

}  // namespace
}  // namespace r1kit::data
