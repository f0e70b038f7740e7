// Recipe sections every trainer shares (pretrain, sft, distill, grpo, run): where the
// tokenizer comes from, the run directory and its checkpoints, and the threads. The
// optimizer's section is train/optim.h; the model's is policy/model_config.h.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace r1kit::train {

struct TokenizerSection {
  std::string
      path;  // an existing tokenizer (file or directory); empty: model.from's, else train one
  int64_t vocab_size = 512;  // vocabulary size when training
  void visit(ConfigVisitor& v) {
    v.field("path", path,
            "existing tokenizer: a SentencePiece .model, a tokenizer.json, or a directory with "
            "either; empty: model.from's, else train one on the corpus");
    v.field("vocab_size", vocab_size, "vocabulary size when training one",
            Range::between(300, 1 << 20));
  }
};

// The help of every trainer's max_skipped_steps key (train.max_skipped_steps,
// grpo.max_skipped_steps): TrainingRun::count_step.
inline constexpr char kMaxSkippedStepsHelp[] =
    "end the run with an error after this many optimizer steps in a row were skipped for a "
    "non-finite loss or gradient norm";

struct CheckpointSection {
  std::string dir = "runs/pretrain";  // run directory: corpus, tokenizer, metrics, checkpoints
  int64_t every = 100;                // steps between checkpoints; 0 = only the final model
  bool resume = true;                 // continue from the newest checkpoint in dir
  int64_t keep_last = 0;              // checkpoints kept (the newest); 0 = all
  void visit(ConfigVisitor& v) {
    v.field("dir", dir, "run directory (corpus, tokenizer, metrics, checkpoints)");
    v.field("every", every, "steps between checkpoints; 0 = only the final model",
            Range::non_negative());
    v.field("resume", resume, "continue from the newest checkpoint in dir");
    v.field("keep_last", keep_last,
            "keep only the newest N checkpoints (older ones are deleted after each save); 0 = all",
            Range::non_negative());
  }
};

// Threads, and data parallelism across processes launched by torchrun (or mpirun,
// SLURM): docs/distributed.md. Without a launcher's variables the run is one process and
// the keys below `threads` change nothing.
struct DistSection {
  int64_t threads = 0;           // LibTorch intra-op threads; 0 = auto (train/setup.h)
  int64_t timeout_s = 300;       // a collective or a silent rank fails the job after this long
  double bucket_mb = 25;         // gradient all-reduce bucket size
  bool shard_optimizer = false;  // ZeRO stage 1: each rank keeps AdamW state for 1/W
  bool reduce_scatter = false;   // with shard_optimizer: each rank receives its range's sums
  void visit(ConfigVisitor& v) {
    v.field("threads", threads,
            "LibTorch intra-op threads; 0 = auto: every core for bf16 compute in a run that "
            "does not generate (SFT, pretraining, offline distillation), else 1 (f32's GEMMs "
            "split over the cores in OpenBLAS's own pool); with more than 1, OpenBLAS is held "
            "to 1 (docs/distributed.md, \"Threads\")",
            Range::non_negative());
    v.field("timeout_s", timeout_s,
            "seconds after which a rendezvous, a collective or a rank without a heartbeat "
            "fails the job, naming the lost rank (docs/distributed.md)",
            Range::positive());
    v.field("bucket_mb", bucket_mb,
            "megabytes of gradients per all-reduce bucket, launched during the backward pass",
            Range::positive());
    v.field("shard_optimizer", shard_optimizer,
            "ZeRO stage 1: each rank keeps the AdamW state of 1/world_size of the parameters, "
            "updates them and all-gathers the weights (docs/distributed.md)");
    v.field("reduce_scatter", reduce_scatter,
            "with shard_optimizer: gradients reduce-scattered (each rank receives the sums of "
            "its range, half the traffic) instead of all-reduced; on Gloo an all-to-all, "
            "slower on one machine (docs/distributed.md)");
  }
};

}  // namespace r1kit::train
