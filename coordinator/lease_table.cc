// LeaseTable bookkeeping; see lease_table.h.
#include "coordinator/lease_table.h"

#include <algorithm>

namespace lanlm::coordinator {
namespace {

std::string Describe(const LeaseInfo& lease) {
  const std::string shards =
      lease.count == 1 ? "shard " + std::to_string(lease.shard)
                       : "shards " + std::to_string(lease.shard) + "-" + std::to_string(lease.shard + lease.count - 1);
  return "lease " + std::to_string(lease.lease_id) + " (step " + std::to_string(lease.step) + ", " + shards + ")";
}

}  // namespace

void LeaseTable::StartStep(int64_t step, int64_t num_shards, int64_t shards_per_lease) {
  LANLM_CHECK(num_shards > 0, "a step needs at least one shard");
  LANLM_CHECK(shards_per_lease > 0 && (shards_per_lease & (shards_per_lease - 1)) == 0,
              "shards_per_lease must be a power of two");
  // Keep only the history of the step that just ended, so late commits get a precise answer
  // while memory stays bounded.
  for (auto it = history_.begin(); it != history_.end();) {
    it = it->second.lease.step < step_ ? history_.erase(it) : std::next(it);
  }
  for (const auto& [id, lease] : active_) history_[id] = {lease, Fate::kAbandoned};
  active_.clear();
  step_ = step;
  num_shards_ = num_shards;
  block_ = shards_per_lease;
  done_count_ = 0;
  done_.assign(static_cast<size_t>(num_shards), false);
  pending_.clear();
  for (int64_t s = 0; s < num_shards; s += block_) pending_.insert(s);
}

LeaseInfo LeaseTable::Issue(int64_t connection) {
  LANLM_CHECK(!pending_.empty(), "Issue without a pending shard");
  const int64_t shard = *pending_.begin();
  pending_.erase(pending_.begin());
  LeaseInfo lease{next_id_++, step_, shard, std::min(block_, num_shards_ - shard), block_, connection};
  active_[lease.lease_id] = lease;
  return lease;
}

Status LeaseTable::CheckActive(int64_t lease_id, int64_t connection) const {
  if (lease_id <= 0 || lease_id >= next_id_) {
    return NotFoundError("lease " + std::to_string(lease_id) + " was never issued");
  }
  if (auto it = active_.find(lease_id); it != active_.end()) {
    if (it->second.connection != connection) {
      return NotFoundError(Describe(it->second) + " was not issued to this worker");
    }
    return OkStatus();
  }
  auto it = history_.find(lease_id);
  if (it == history_.end()) {
    return AbortedError("lease " + std::to_string(lease_id) + " belongs to an earlier step");
  }
  const Past& past = it->second;
  if (past.lease.connection != connection) {
    return NotFoundError(Describe(past.lease) + " was not issued to this worker");
  }
  switch (past.fate) {
    case Fate::kCommitted:
      return AbortedError(Describe(past.lease) + " was already committed");
    case Fate::kExpired:
      return AbortedError(Describe(past.lease) + " expired and was re-issued");
    case Fate::kReleased:
      return AbortedError(Describe(past.lease) + " was released after an error");
    case Fate::kAbandoned:
      break;
  }
  return AbortedError(Describe(past.lease) + " belongs to a finished or abandoned step");
}

StatusOr<LeaseInfo> LeaseTable::Complete(int64_t lease_id, int64_t connection) {
  LANLM_RETURN_IF_ERROR(CheckActive(lease_id, connection));
  const LeaseInfo lease = active_.at(lease_id);
  for (int64_t s = lease.shard; s < lease.shard + lease.count; ++s) {
    LANLM_CHECK(!done_[static_cast<size_t>(s)], "an active lease for a shard already done");
    done_[static_cast<size_t>(s)] = true;
  }
  done_count_ += lease.count;
  Retire(lease, Fate::kCommitted);
  return lease;
}

bool LeaseTable::Release(int64_t lease_id, bool expired) {
  auto it = active_.find(lease_id);
  if (it == active_.end()) return false;
  const LeaseInfo lease = it->second;
  pending_.insert(lease.shard);
  Retire(lease, expired ? Fate::kExpired : Fate::kReleased);
  return true;
}

std::vector<LeaseInfo> LeaseTable::ReleaseConnection(int64_t connection) {
  std::vector<LeaseInfo> released;
  for (const auto& [id, lease] : active_) {
    if (lease.connection == connection) released.push_back(lease);
  }
  for (const LeaseInfo& lease : released) Release(lease.lease_id, /*expired=*/false);
  return released;
}

void LeaseTable::Retire(const LeaseInfo& lease, Fate fate) {
  active_.erase(lease.lease_id);
  history_[lease.lease_id] = {lease, fate};
}

}  // namespace lanlm::coordinator
