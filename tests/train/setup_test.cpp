// The set-up every trainer shares (train/setup.h) and the resume check of training
// checkpoints (train/checkpoint.h).
#include "train/setup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/atomic_file.h"
#include "core/blas_threads.h"
#include "core/config.h"
#include "core/stop_signal.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

namespace r1kit::train {
namespace {
TEST(ResumeCompatibilityTest, NamesTheChangedKey) {
  auto saved = nlohmann::json::parse(
      R"({"train": {"seed": 1, "stop_after": 3, "optim": {"lr": 0.001}}, "dist": {"threads": 1}})");
  auto now = saved;
  now["train"]["stop_after"] = 0;  // allowed
  now["dist"]["threads"] = 2;      // allowed (whole section)
  const std::vector<std::string> ok = {"train.stop_after", "dist"};
  EXPECT_TRUE(check_resume_compatible(saved, now, ok).ok());
  now["train"]["optim"]["lr"] = 0.002;
  auto st = check_resume_compatible(saved, now, ok);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("train.optim.lr is 0.001"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("0.002"), std::string::npos);
  now = saved;
  now["train"]["extra"] = true;  // a key only one side has
  EXPECT_NE(check_resume_compatible(saved, now, ok).message().find("train.extra"),
            std::string::npos);
}

// A checkpoint saved before a recipe key existed resumes when the key is at its default,
// and not when the recipe sets it to anything else.
TEST(ResumeCompatibilityTest, AKeyTheCheckpointLacksCountsAtItsDefault) {
  auto saved = nlohmann::json::parse(R"({"train": {"seed": 1}})");
  auto defaults = nlohmann::json::parse(R"({"train": {"seed": 0, "compute": "train"}})");
  auto now = nlohmann::json::parse(R"({"train": {"seed": 1, "compute": "train"}})");
  EXPECT_FALSE(check_resume_compatible(saved, now, {}).ok());  // without defaults
  EXPECT_TRUE(check_resume_compatible(saved, now, {}, defaults).ok());
  now["train"]["compute"] = "f32";
  auto st = check_resume_compatible(saved, now, {}, defaults);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("train.compute"), std::string::npos) << st.message();
  // A key the checkpoint has is compared as it is, whatever the default.
  now = nlohmann::json::parse(R"({"train": {"seed": 0, "compute": "train"}})");
  EXPECT_FALSE(check_resume_compatible(saved, now, {}, defaults).ok());
}
}  // namespace
}  // namespace r1kit::train

namespace r1kit::train {
namespace {
namespace fs = std::filesystem;

TrainingRunOptions nano_options(const std::string& dir) {
  TrainingRunOptions o;
  o.model.preset = "nano";
  o.checkpoint.dir = dir;
  o.checkpoint.every = 2;
  o.vocab_size = 64;
  o.seed = 3;
  o.recipe = nlohmann::json::parse(R"({"train": {"seed": 3, "steps": 10}, "checkpoint": {}})");
  o.may_change = {"train.steps"};
  return o;
}

TEST(ResolveTokenizerTest, NamesTheMissingSource) {
  const testing::ScopedTempDir tmp("train_setup_tok");
  const std::string dir = tmp.join("run");
  fs::create_directories(dir);
  TokenizerSection none;
  auto from = resolve_tokenizer(none, dir + "/model_without_tokenizer", dir, {});
  ASSERT_FALSE(from.ok());
  EXPECT_NE(from.status().message().find("model.from="), std::string::npos);
  EXPECT_NE(from.status().message().find("tokenizer.path"), std::string::npos);
  auto nothing = resolve_tokenizer(none, "", dir, {});
  ASSERT_FALSE(nothing.ok());
  EXPECT_NE(nothing.status().message().find("tokenizer.path"), std::string::npos);
  // A trainer that can make one is asked to, once, at RUN/tokenizer.model.
  int calls = 0;
  auto failing = resolve_tokenizer(none, "", dir, [&](const std::string& path) {
    ++calls;
    EXPECT_EQ(path, dir + "/tokenizer.model");
    return InvalidArgument("no corpus");
  });
  EXPECT_EQ(calls, 1);
  ASSERT_FALSE(failing.ok());
  EXPECT_NE(failing.status().message().find("no corpus"), std::string::npos);
}

TEST(PrepareRunTest, MissingModelFromNamesTheKeyAndTheCommands) {
  const testing::ScopedTempDir tmp("train_setup_model_from");
  const std::string dir = tmp.join("run");
  const Status s = prepare_run(DistSection{}, nano_options(dir).checkpoint, dir + "/no/final");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  for (const char* part : {"model.from=", "/no/final", "r1kit sft", "r1kit pretrain"})
    EXPECT_NE(s.message().find(part), std::string::npos) << part << ": " << s.message();
  EXPECT_TRUE(prepare_run(DistSection{}, nano_options(dir).checkpoint, ::testing::TempDir()).ok());
}

TEST(StopInvocationTest, StopAfterOrSignalButNeverOnTheLastStep) {
  clear_stop_request();
  EXPECT_FALSE(stop_invocation(2, 0, false));
  EXPECT_FALSE(stop_invocation(2, 3, false));
  EXPECT_TRUE(stop_invocation(3, 3, false));
  EXPECT_FALSE(stop_invocation(3, 3, true));
  {
    StopSignalScope scope;
    std::raise(SIGTERM);
    EXPECT_TRUE(stop_invocation(1, 0, false));
    EXPECT_FALSE(stop_invocation(1, 0, true));
  }
  clear_stop_request();
}

TEST(TrainingRunTest, FreshRunThenResumeWithTheSameWeights) {
  const testing::ScopedTempDir tmp("train_setup_resume");
  const std::string dir = tmp.join("run");
  fs::create_directories(dir);
  ASSERT_TRUE(prepare_run(DistSection{}, nano_options(dir).checkpoint).ok());
  auto a = TrainingRun::start(nano_options(dir));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->start_step(), 0);
  EXPECT_TRUE(a->resume_dir().empty());
  EXPECT_GE(a->model().args().vocab_size, 64);
  // Move the weights away from their initial values, then checkpoint step 4.
  {
    torch::NoGradGuard ng;
    for (auto& p : a->model().parameters()) p.add_(0.5);
  }
  ASSERT_TRUE(a->save(4, {{"data_pos", 17}}).ok());
  auto b = TrainingRun::start(nano_options(dir));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->start_step(), 4);
  EXPECT_EQ(b->resumed_state().value("data_pos", 0), 17);
  EXPECT_EQ(b->resumed_state()["recipe"], nano_options(dir).recipe);
  auto pa = a->model().named_parameters();
  for (const auto& p : b->model().named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), pa[p.key()])) << p.key();
  // A key outside may_change refuses the resume and is named; one inside is accepted.
  auto changed = nano_options(dir);
  changed.recipe["train"]["seed"] = 4;
  auto refused = TrainingRun::start(changed);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("train.seed"), std::string::npos);
  auto longer = nano_options(dir);
  longer.recipe["train"]["steps"] = 20;
  EXPECT_TRUE(TrainingRun::start(longer).ok());
  // resume: false starts over.
  auto fresh = nano_options(dir);
  fresh.checkpoint.resume = false;
  auto c = TrainingRun::start(fresh);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->start_step(), 0);
}

TEST(TrainingThreadsTest, AutoTakesEveryCoreForBf16RunsThatDoNotGenerate) {
  // An explicit count is kept whatever the run.
  EXPECT_EQ(training_threads(3, true, true, 8, false), 3);
  EXPECT_EQ(training_threads(1, true, false, 8, true), 1);
  // Auto: every core for bf16 without generation; for f32 too where OpenBLAS runs on
  // LibTorch's threads (its OpenMP build), one beside OpenBLAS's own pool (which splits
  // its GEMMs); one for runs that sample with the engine.
  EXPECT_EQ(training_threads(0, true, false, 8, false), 8);
  EXPECT_EQ(training_threads(0, false, false, 8, false), 1);
  EXPECT_EQ(training_threads(0, false, false, 8, true), 8);
  EXPECT_EQ(training_threads(0, true, true, 8, true), 1);
  EXPECT_EQ(training_threads(0, false, true, 8, true), 1);
  EXPECT_EQ(training_threads(0, true, false, 0, false), 1);
}

TEST(TrainingThreadsTest, UsableCoresAreSharedAmongTheLocalRanks) {
  const char* saved = std::getenv("LOCAL_WORLD_SIZE");
  const std::string keep = saved ? saved : "";
  ::unsetenv("LOCAL_WORLD_SIZE");
  const int all = usable_cores();
  EXPECT_GE(all, 1);
  ::setenv("LOCAL_WORLD_SIZE", std::to_string(all).c_str(), 1);
  EXPECT_EQ(usable_cores(), 1);
  ::setenv("LOCAL_WORLD_SIZE", std::to_string(2 * all).c_str(), 1);
  EXPECT_EQ(usable_cores(), 1);  // never 0
  if (saved)
    ::setenv("LOCAL_WORLD_SIZE", keep.c_str(), 1);
  else
    ::unsetenv("LOCAL_WORLD_SIZE");
}

// A run sets its threads and gives the previous count back when it ends.
TEST(TrainingThreadsTest, ARunSetsItsThreadsAndRestoresThem) {
  const int before = at::get_num_threads();
  const int blas_before = BlasThreadsGuard::current();  // -1 without OpenBLAS
  const testing::ScopedTempDir tmp("train_setup_threads");
  const std::string dir = tmp.join("run");
  {
    TrainingRunOptions o = nano_options(dir);
    o.dist.threads = before + 1;
    auto run = TrainingRun::start(o);
    ASSERT_TRUE(run.ok()) << run.status().to_string();
    EXPECT_EQ(at::get_num_threads(), before + 1);
    // More than one LibTorch thread: OpenBLAS's own pool held to one; its OpenMP build,
    // on LibTorch's threads, left alone.
    if (blas_before > 0) {
      EXPECT_EQ(BlasThreadsGuard::current(), BlasThreadsGuard::shares_openmp() ? blas_before : 1);
    }
    TrainingRun moved = std::move(*run);  // the run's threads travel with it
    EXPECT_EQ(at::get_num_threads(), before + 1);
  }
  EXPECT_EQ(at::get_num_threads(), before);
  EXPECT_EQ(BlasThreadsGuard::current(), blas_before);
}

TEST(TrainingRunTest, VocabularyLargerThanTheModelsIsRefused) {
  const testing::ScopedTempDir tmp("train_setup_vocab");
  const std::string dir = tmp.join("run");
  auto o = nano_options(dir);
  o.model.from = "";
  auto run = TrainingRun::start(o);
  ASSERT_TRUE(run.ok());
  o.vocab_size = run->model().args().vocab_size + 1;
  o.checkpoint.resume = false;
  // A fresh preset grows to the tokenizer's vocabulary, so build a run from a saved model
  // with a smaller one instead.
  ASSERT_TRUE(run->save_final().ok());
  o.model.from = dir + "/final";
  auto small = TrainingRun::start(o);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("smaller than the tokenizer"), std::string::npos);
}

TEST(TrainingRunTest, CheckpointCadence) {
  const testing::ScopedTempDir tmp("train_setup_cadence");
  const std::string dir = tmp.join("run");
  auto o = nano_options(dir);
  o.checkpoint.every = 3;
  auto run = TrainingRun::start(o);
  ASSERT_TRUE(run.ok());
  EXPECT_FALSE(run->checkpoint_due(1, false, false));
  EXPECT_TRUE(run->checkpoint_due(3, false, false));
  EXPECT_TRUE(run->checkpoint_due(4, true, false));  // the last step
  EXPECT_TRUE(run->checkpoint_due(5, false, true));  // a stop
  o.checkpoint.every = 0;                            // only the final model
  o.checkpoint.resume = false;
  auto never = TrainingRun::start(o);
  ASSERT_TRUE(never.ok());
  EXPECT_FALSE(never->checkpoint_due(3, true, false));
  EXPECT_TRUE(never->checkpoint_due(3, false, true));
}

// A NaN in the loss or the gradients never reaches the weights or AdamW's moments; steps
// skipped for one are counted, and too many in a row end the run naming the key.
TEST(NonFiniteTest, ANonFiniteStepIsSkippedCountedAndEndsTheRunInTheEnd) {
  const testing::ScopedTempDir tmp("train_setup_nonfinite");
  const std::string dir = tmp.join("run");
  auto o = nano_options(dir);
  o.max_skipped_steps = 3;
  auto run = TrainingRun::start(o);
  ASSERT_TRUE(run.ok()) << run.status().message();
  auto params = run->model().parameters();
  auto before = params[0].detach().clone();
  auto backward = [&](double scale) {
    zero_grad(params);
    (run->model().parameters()[0].sum() * scale).backward();
  };
  backward(NAN);
  GuardedStep g = guarded_step(run->optimizer(), params, 1.0, 0.5);
  EXPECT_TRUE(g.skipped);
  backward(1.0);
  EXPECT_TRUE(guarded_step(run->optimizer(), params, 1.0, INFINITY).skipped);
  EXPECT_TRUE(torch::equal(params[0], before));
  EXPECT_TRUE(run->optimizer().state().empty());  // AdamW never saw a step
  std::map<std::string, double> m;
  EXPECT_TRUE(run->count_step(1, true, m).ok());
  EXPECT_EQ(m["train/skipped_steps"], 1);
  EXPECT_TRUE(run->count_step(2, true, m).ok());
  backward(1.0);
  g = guarded_step(run->optimizer(), params, 1.0, 0.5);
  EXPECT_FALSE(g.skipped);
  EXPECT_FALSE(torch::equal(params[0], before));
  EXPECT_TRUE(run->count_step(3, false, m).ok());  // a good step resets the run of skips
  EXPECT_TRUE(run->count_step(4, true, m).ok());
  EXPECT_TRUE(run->count_step(5, true, m).ok());
  const Status s = run->count_step(6, true, m);
  EXPECT_EQ(m["train/skipped_steps"], 5);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("train.max_skipped_steps=3"), std::string::npos) << s.message();
}

TEST(NonFiniteTest, NoCheckpointOrFinalModelWithANonFiniteWeight) {
  const testing::ScopedTempDir tmp("train_setup_nonfinite_save");
  const std::string dir = tmp.join("run");
  auto run = TrainingRun::start(nano_options(dir));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(first_non_finite(run->model()), "");
  {
    torch::NoGradGuard ng;
    run->model().named_parameters()["norm.weight"][0] = NAN;
  }
  EXPECT_EQ(first_non_finite(run->model()), "norm.weight");
  const Status s = run->save(2);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("norm.weight"), std::string::npos) << s.message();
  EXPECT_FALSE(run->save_final().ok());
  EXPECT_EQ(latest_checkpoint(dir), "");
  EXPECT_FALSE(fs::exists(dir + "/final"));
}

// A save killed midway leaves temporaries that the next start removes; keep_last is a
// recipe key and prunes older checkpoints.
TEST(CheckpointFilesTest, InterruptedSavesAreCleanedAndKeepLastPrunes) {
  const testing::ScopedTempDir tmp("train_setup_tmp_clean");
  const std::string dir = tmp.join("run");
  fs::create_directories(dir + "/checkpoints/step-000004.tmp.99.0/x");
  fs::create_directories(dir + "/checkpoints/step-000002.tmp.99.1.old");
  fs::create_directories(dir + "/final.tmp.99.2");
  auto section = load_config_string<CheckpointSection>("keep_last: 2\nevery: 1\n");
  ASSERT_TRUE(section.ok()) << section.status().message();
  auto o = nano_options(dir);
  o.checkpoint.keep_last = section->keep_last;
  auto run = TrainingRun::start(o);
  ASSERT_TRUE(run.ok());
  EXPECT_FALSE(fs::exists(dir + "/checkpoints/step-000004.tmp.99.0"));
  EXPECT_FALSE(fs::exists(dir + "/checkpoints/step-000002.tmp.99.1.old"));
  EXPECT_FALSE(fs::exists(dir + "/final.tmp.99.2"));
  for (int step : {1, 2, 3}) ASSERT_TRUE(run->save(step).ok());
  ASSERT_TRUE(run->save(3).ok());  // the same step again replaces it
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir + "/checkpoints"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-000002", "step-000003"}));
}

// A run killed before its first checkpoint and started again begins both logs afresh:
// no step appears twice in metrics.jsonl or TensorBoard.
TEST(CheckpointFilesTest, AFreshRunStartsItsLogsEmpty) {
  const testing::ScopedTempDir tmp("train_setup_fresh_logs");
  const std::string dir = tmp.join("run");
  auto o = nano_options(dir);
  {
    auto first = TrainingRun::start(o);
    ASSERT_TRUE(first.ok());
    for (int step : {1, 2}) ASSERT_TRUE(first->metrics().write(step, {{"loss", 1.0}}).ok());
  }  // killed: no checkpoint
  auto again = TrainingRun::start(o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->start_step(), 0);
  ASSERT_TRUE(again->metrics().write(1, {{"loss", 2.0}}).ok());
  EXPECT_EQ(*read_file(dir + "/metrics.jsonl"), "{\"loss\":2.0,\"step\":1}\n");
  int event_files = 0;
  for (const auto& e : fs::directory_iterator(dir + "/tensorboard"))
    event_files += e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_EQ(event_files, 1);
}

}  // namespace
}  // namespace r1kit::train
