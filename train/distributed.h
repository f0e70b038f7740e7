// Data parallelism across processes on PyTorch's c10d: the launcher's environment, the
// rendezvous through c10d's TCPStore, and a ProcessGroupGloo (ProcessGroupNCCL in a build
// against a CUDA LibTorch) behind train::DataParallel. docs/distributed.md.
//
//   torchrun --nproc_per_node 2 --redirects 2 --tee 2 --no_python build/r1kit sft RECIPE
//
// Every trainer joins through train::prepare_run; without a launcher's variables nothing
// is joined and train::process_group() stays the one-process default.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "train/data_parallel.h"
#include "train/sections.h"

namespace r1kit::train {

// Where this process sits in the job, as a launcher describes it.
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int restart_count = 0;         // torchrun's TORCHELASTIC_RESTART_COUNT
  bool use_agent_store = false;  // torchrun's agent hosts the store (static rendezvous)
  std::string launcher;          // "torchrun", "mpirun" or "slurm": whose names were read
};

using GetEnvFn = std::function<const char*(const char*)>;

// The launcher's variables: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT and TORCHELASTIC_USE_AGENT_STORE;
// else Open MPI's OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE; else SLURM's
// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (and SLURM_NTASKS_PER_NODE). The last two
// take MASTER_ADDR and MASTER_PORT from the environment too (default 127.0.0.1:29500).
// nullopt when none is set: one process. Bad values are an error naming the variable.
StatusOr<std::optional<LaunchEnv>> read_launch_env(const GetEnvFn& getenv);

// Joins the job the environment describes, once per process (later calls return at
// once): rendezvous, process group, rank 0's heartbeat watchdog, the "rank R of W
// (backend)" log line; ranks other than 0 then log warnings and errors only. After it,
// train::process_group() is the job's group. Without a launcher it does nothing.
Status join_process_group(const DistSection& dist);

// Joins the job `env` describes (tests; join_process_group reads the environment).
StatusOr<std::unique_ptr<DataParallel>> connect(const LaunchEnv& env, const DistSection& dist);

// The end of a successful command: every rank waits for the others, then stops its
// watchdog, so that no rank reports another as lost for leaving. Nothing for one process.
void leave_process_group();

}  // namespace r1kit::train
