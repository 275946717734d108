// RunLocal: `lanlm-coordinator --local`, the single-process reference (engine LocalTrainer on
// the same RunSetup as a cluster run, no server, no workers). Prints one line per step and
// the same final key=value line as a cluster run, so fingerprints and tokens/s compare
// directly. Not the cluster path.
#pragma once

#include "coordinator/run_config.h"
#include "coordinator/training_run.h"

namespace lanlm::coordinator {

// Trains to options.steps (or --stop-after) on `threads` threads; writes a final checkpoint
// into options.checkpoint_dir when set.
StatusOr<RunResult> RunLocal(const CoordinatorOptions& options, const GivenFlags& given);

}  // namespace lanlm::coordinator
