// The step history of a training run: one JSON object per finished optimizer step, one per
// line (JSON lines), with the same keys whoever writes it: lanlm-coordinator keeps it as
// <checkpoint dir>/history.jsonl (coordinator/run_metrics.h) and `lanlm train --history FILE`
// writes it for a single-process run, so one plotting script reads both. A resumed run keeps
// the rows up to its resumed step and appends the rest (later rows are redone, so dropped).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

// One finished optimizer step. The split of step_s is per worker (means over the workers that
// committed in the step): compute_s (forward + backward), transfer_s (lease round trip minus
// compute: parameters out, gradient in, queueing), tree_s (the final GradientTree sum),
// optimizer_s (clip + AdamW); waiting_s is the rest (workers idle for a lease, stragglers).
// A single-process run has no workers (workers = 0) and reports its whole step as compute_s.
struct StepRecord {
  int64_t step = 0;             // parameter version after the step
  int64_t tokens = 0;           // tokens trained on since step 0 (after this step)
  float loss = 0.0f;            // mean shard loss, nats
  float validation_loss = 0.0f; // nats; 0 = not evaluated at this step
  double tokens_per_second = 0.0;
  double step_s = 0.0, compute_s = 0.0, transfer_s = 0.0, waiting_s = 0.0, tree_s = 0.0, optimizer_s = 0.0;
  int64_t bytes_in = 0, bytes_out = 0;  // gradient bytes received / parameter bytes sent
  int64_t reissued = 0;                 // leases re-issued during the step
  int workers = 0;
  int64_t unix_ms = 0;                  // wall-clock time the step finished
};

// One history line (no trailing newline) and its parser (false on a malformed line).
std::string StepRecordJson(const StepRecord& record);
bool ParseStepRecord(const std::string& line, StepRecord* record);

// Reads the history at path (none yet: empty), keeps the rows with step <= keep_through and
// rewrites the file with them through a temporary file (a crash never loses it). Returns the
// kept rows; *malformed (optional) counts the lines skipped. UNAVAILABLE naming the file when
// it cannot be written.
StatusOr<std::vector<StepRecord>> RestartHistory(const std::string& path, int64_t keep_through,
                                                 int64_t* malformed = nullptr);
// Appends one row; UNAVAILABLE naming the file when it cannot.
Status AppendHistory(const std::string& path, const StepRecord& record);

// The wall clock in milliseconds since the Unix epoch (StepRecord::unix_ms).
int64_t UnixMillis();

}  // namespace lanlm::engine
