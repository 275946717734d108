// LeaseTable: which shard block of the current step is pending, leased (to which connection,
// until when) or done. A block is an aligned run of shards_per_lease shards (a power of two;
// the last block is clipped at the step's shard count), leased, re-issued and completed
// whole. Pure bookkeeping with no clock, threads or I/O, so exactly-once application
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
  int64_t shard = 0;       // first shard of the block
  int64_t count = 1;       // shards in the block (the last block may be short)
  int64_t block = 1;       // the block size it is aligned to (shards_per_lease)
  int64_t connection = 0;  // the Work stream holding the lease
};

class LeaseTable {
 public:
  // Forgets the previous step's leases (they become "abandoned") and makes the blocks of
  // shards [0, num_shards) of `step` pending. shards_per_lease: a power of two >= 1.
  void StartStep(int64_t step, int64_t num_shards, int64_t shards_per_lease = 1);

  bool HasPending() const { return !pending_.empty(); }
  // Leases the lowest pending block to `connection`. Requires HasPending().
  LeaseInfo Issue(int64_t connection);

  // OK when lease_id is active and held by `connection`. NOT_FOUND for a lease never issued
  // or issued to another connection; ABORTED for one that expired, was released, was already
  // committed, or belongs to an earlier step.
  Status CheckActive(int64_t lease_id, int64_t connection) const;
  // CheckActive, then marks the block's shards done. Returns the lease.
  StatusOr<LeaseInfo> Complete(int64_t lease_id, int64_t connection);
  // Returns an active lease's block to the pending set (deadline passed, bad gradient).
  // `expired` selects the reason later commits are told. False when it was not active.
  bool Release(int64_t lease_id, bool expired);
  // Releases every active lease of a connection (its stream broke); returns them.
  std::vector<LeaseInfo> ReleaseConnection(int64_t connection);

  // The active lease with this id, or null.
  const LeaseInfo* Find(int64_t lease_id) const {
    auto it = active_.find(lease_id);
    return it == active_.end() ? nullptr : &it->second;
  }

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
  int64_t block_ = 1;
  int64_t done_count_ = 0;
  std::set<int64_t> pending_;  // first shards of pending blocks
  std::vector<bool> done_;
  std::map<int64_t, LeaseInfo> active_;        // lease_id -> lease
  std::unordered_map<int64_t, Past> history_;  // retired leases of this and the previous step
};

}  // namespace lanlm::coordinator
