// LeaseTable: which shard of the current step is pending, leased (to which connection, until
// when) or done. Pure bookkeeping with no clock, threads or I/O, so exactly-once application
// per (step, shard) can be tested in isolation (DESIGN.md §6, §8.2). Not thread-safe: the
// coordinator's loop thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::coordinator {

struct LeaseInfo {
  int64_t lease_id = 0;
  int64_t step = 0;
  int64_t shard = 0;
  int64_t connection = 0;  // the Work stream holding the lease
};

class LeaseTable {
 public:
  // Forgets the previous step's leases (they become "abandoned") and makes shards
  // [0, num_shards) of `step` pending.
  void StartStep(int64_t step, int64_t num_shards);

  bool HasPending() const { return !pending_.empty(); }
  // Leases the lowest pending shard to `connection`. Requires HasPending().
  LeaseInfo Issue(int64_t connection);

  // OK when lease_id is active and held by `connection`. NOT_FOUND for a lease never issued
  // or issued to another connection; ABORTED for one that expired, was released, was already
  // committed, or belongs to an earlier step.
  Status CheckActive(int64_t lease_id, int64_t connection) const;
  // CheckActive, then marks the shard done. Returns the lease.
  StatusOr<LeaseInfo> Complete(int64_t lease_id, int64_t connection);
  // Returns an active lease's shard to the pending set (deadline passed, bad gradient).
  // `expired` selects the reason later commits are told. False when it was not active.
  bool Release(int64_t lease_id, bool expired);
  // Releases every active lease of a connection (its stream broke); returns them.
  std::vector<LeaseInfo> ReleaseConnection(int64_t connection);

  bool StepComplete() const { return num_shards_ > 0 && done_count_ == num_shards_; }
  int64_t step() const { return step_; }
  int64_t done_count() const { return done_count_; }
  int64_t active_count() const { return static_cast<int64_t>(active_.size()); }
  int64_t issued_count() const { return next_id_ - 1; }

 private:
  enum class Fate { kCommitted, kExpired, kReleased, kAbandoned };
  struct Past {
    LeaseInfo lease;
    Fate fate;
  };
  void Retire(const LeaseInfo& lease, Fate fate);

  int64_t next_id_ = 1;
  int64_t step_ = -1;
  int64_t num_shards_ = 0;
  int64_t done_count_ = 0;
  std::set<int64_t> pending_;
  std::vector<bool> done_;
  std::map<int64_t, LeaseInfo> active_;          // lease_id -> lease
  std::unordered_map<int64_t, Past> history_;    // retired leases of this and the previous step
};

}  // namespace lanlm::coordinator
