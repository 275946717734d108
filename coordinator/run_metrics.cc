// RunMetrics; see run_metrics.h.
#include "coordinator/run_metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace lanlm::coordinator {
namespace {

namespace fs = std::filesystem;

int64_t UnixMs() { return engine::UnixMillis(); }

// The checkpoints already in dir (a resumed run's), oldest step first.
std::vector<CheckpointRecord> ScanCheckpoints(const std::string& dir) {
  std::vector<CheckpointRecord> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (std::sscanf(name.c_str(), "step-%" SCNd64 ".safetensors", &step) != 1) continue;
    const auto mtime = fs::last_write_time(entry.path(), ec);
    const auto system = std::chrono::file_clock::to_sys(mtime);
    found.push_back({step, entry.path().string(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(system.time_since_epoch()).count()});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return found;
}

}  // namespace

Status RunMetrics::OpenHistory(const std::string& checkpoint_dir, int64_t resumed_step) {
  if (checkpoint_dir.empty()) return OkStatus();
  const std::string path = (fs::path(checkpoint_dir) / "history.jsonl").string();
  std::error_code ec;
  fs::create_directories(checkpoint_dir, ec);
  int64_t malformed = 0;
  LANLM_ASSIGN_OR_RETURN(std::vector<StepRecord> kept, engine::RestartHistory(path, resumed_step, &malformed));
  if (malformed > 0) spdlog::warn("{}: skipped {} malformed line(s)", path, malformed);
  std::lock_guard<std::mutex> lock(mu_);
  history_path_ = path;
  history_ = std::move(kept);
  if (!history_.empty()) {
    totals_.last = history_.back();
    totals_.tokens = history_.back().tokens;
  }
  for (const StepRecord& record : history_) {
    if (record.validation_loss > 0.0f) totals_.validation_loss = record.validation_loss;
  }
  checkpoints_ = ScanCheckpoints(checkpoint_dir);
  return OkStatus();
}

void RunMetrics::WorkerJoined(const std::string& id, const std::string& name, const std::string& relay_address) {
  std::lock_guard<std::mutex> lock(mu_);
  WorkerRecord& worker = workers_[id];
  worker.id = id;
  worker.name = name;
  worker.relay_address = relay_address;
  worker.connected = true;
  worker.joined_unix_ms = worker.last_seen_unix_ms = UnixMs();
  ++totals_.workers_joined;
}

void RunMetrics::WorkerLeft(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  it->second.connected = false;
  it->second.last_seen_unix_ms = UnixMs();
  ++totals_.workers_left;
  // Keep the table bounded on a long run with many reconnects: forget the oldest departed.
  if (workers_.size() > 256) {
    auto oldest = workers_.end();
    for (auto w = workers_.begin(); w != workers_.end(); ++w) {
      if (!w->second.connected && (oldest == workers_.end() || w->second.last_seen_unix_ms < oldest->second.last_seen_unix_ms)) {
        oldest = w;
      }
    }
    if (oldest != workers_.end()) workers_.erase(oldest);
  }
}

void RunMetrics::ParamsFrom(const std::string& worker_id, const std::string& source) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = workers_.find(worker_id); it != workers_.end()) it->second.params_from = source;
}

void RunMetrics::RelayFallback(const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = workers_.find(worker_id); it != workers_.end()) ++it->second.relay_fallbacks;
}

void RunMetrics::LeaseIssued(int64_t lease_id, const std::string& worker_id) {
  pending_[lease_id] = {worker_id, Clock::now()};
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.leases_issued;
}

void RunMetrics::LeaseCommitted(int64_t lease_id, const std::string& worker_id, int64_t tokens, double compute_ms) {
  double round_trip_s = 0.0;
  if (auto it = pending_.find(lease_id); it != pending_.end()) {
    round_trip_s = std::chrono::duration<double>(Clock::now() - it->second.issued).count();
    pending_.erase(it);
  }
  // Leases that never commit (expired, released) are forgotten once well in the past.
  while (pending_.size() > 4096) pending_.erase(pending_.begin());
  const double compute_s = compute_ms / 1e3;
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.leases_committed;
  step_workers_[worker_id] = true;
  step_compute_s_ += compute_s;
  step_transfer_s_ += std::max(0.0, round_trip_s - compute_s);
  WorkerRecord& worker = workers_[worker_id];
  worker.id = worker_id;
  ++worker.leases;
  worker.tokens += tokens;
  worker.compute_s += compute_s;
  if (round_trip_s > 0.0) worker.tokens_per_second = static_cast<double>(tokens) / round_trip_s;
  worker.last_seen_unix_ms = UnixMs();
}

void RunMetrics::CommitRejected(StatusCode code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.commits_rejected[StatusCodeName(code)];
}

void RunMetrics::StepFinished(const StepEnd& end) {
  std::lock_guard<std::mutex> lock(mu_);
  StepRecord r;
  r.step = end.step;
  r.tokens = totals_.tokens + end.step_tokens;
  r.loss = end.loss;
  r.validation_loss = end.validation_loss;
  r.tokens_per_second = end.step_s > 0.0 ? static_cast<double>(end.step_tokens) / end.step_s : 0.0;
  const double contributors = std::max<double>(1.0, static_cast<double>(step_workers_.size()));
  r.step_s = end.step_s;
  r.compute_s = step_compute_s_ / contributors;
  r.transfer_s = step_transfer_s_ / contributors;
  r.tree_s = end.tree_s;
  r.optimizer_s = end.optimizer_s;
  r.waiting_s = std::max(0.0, r.step_s - r.compute_s - r.transfer_s - r.tree_s - r.optimizer_s);
  r.bytes_in = end.bytes_in;
  r.bytes_out = end.bytes_out;
  r.reissued = end.reissued;
  r.workers = end.workers;
  r.unix_ms = UnixMs();
  step_workers_.clear();
  step_compute_s_ = step_transfer_s_ = 0.0;

  ++totals_.steps;
  if (r.validation_loss > 0.0f) {
    ++totals_.validations;
    totals_.validation_s += end.validation_s;
    totals_.validation_loss = r.validation_loss;
  }
  totals_.tokens = r.tokens;
  totals_.bytes_in += r.bytes_in;
  totals_.bytes_out += r.bytes_out;
  totals_.leases_reissued += r.reissued;
  totals_.step_s += r.step_s;
  totals_.compute_s += r.compute_s;
  totals_.transfer_s += r.transfer_s;
  totals_.waiting_s += r.waiting_s;
  totals_.tree_s += r.tree_s;
  totals_.optimizer_s += r.optimizer_s;
  totals_.last = r;
  history_.push_back(r);
  if (!history_path_.empty()) {
    if (Status appended = engine::AppendHistory(history_path_, r); !appended.ok()) spdlog::warn("{}", appended.message());
  }
}

void RunMetrics::CheckpointWritten(int64_t step, const std::string& path, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ok) {
    ++totals_.checkpoint_failures;
    return;
  }
  ++totals_.checkpoints;
  checkpoints_.push_back({step, path, UnixMs()});
}

MetricTotals RunMetrics::Totals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_;
}

std::vector<WorkerRecord> RunMetrics::Workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<WorkerRecord> out;
  for (const auto& [id, worker] : workers_) out.push_back(worker);
  return out;
}

std::vector<CheckpointRecord> RunMetrics::Checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoints_;
}

std::vector<StepRecord> RunMetrics::History(int64_t after, size_t max_points) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto first = std::upper_bound(history_.begin(), history_.end(), after,
                                      [](int64_t s, const StepRecord& r) { return s < r.step; });
  const size_t n = static_cast<size_t>(history_.end() - first);
  std::vector<StepRecord> out;
  if (max_points == 0) return out;
  const size_t stride = (n + max_points - 1) / max_points;
  for (size_t i = 0; i < n; i += std::max<size_t>(1, stride)) out.push_back(first[static_cast<ptrdiff_t>(i)]);
  // Always end with the newest step, so a poll resumes from it.
  if (n > 0 && out.back().step != history_.back().step) out.push_back(history_.back());
  return out;
}

std::string RunMetrics::history_path() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_path_;
}

}  // namespace lanlm::coordinator
