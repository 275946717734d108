// The run history file; see run_history.h.
#include "engine/cli/run_history.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace lanlm::engine {
namespace {

// The number after "key": in a flat JSON object written by StepRecordJson.
bool Field(const std::string& line, const char* key, double* value) {
  const std::string needle = std::string("\"") + key + "\":";
  const auto at = line.find(needle);
  if (at == std::string::npos) return false;
  const char* begin = line.c_str() + at + needle.size();
  char* end = nullptr;
  *value = std::strtod(begin, &end);
  return end != begin;
}

}  // namespace

std::string StepRecordJson(const StepRecord& r) {
  char buf[640];
  std::snprintf(buf, sizeof(buf),
                "{\"step\":%" PRId64 ",\"tokens\":%" PRId64 ",\"loss\":%.6g,\"validation_loss\":%.6g,"
                "\"tokens_per_second\":%.6g,\"step_s\":%.6g,\"compute_s\":%.6g,\"transfer_s\":%.6g,"
                "\"waiting_s\":%.6g,\"tree_s\":%.6g,\"optimizer_s\":%.6g,\"bytes_in\":%" PRId64
                ",\"bytes_out\":%" PRId64 ",\"reissued\":%" PRId64 ",\"workers\":%d,\"unix_ms\":%" PRId64 "}",
                r.step, r.tokens, static_cast<double>(r.loss), static_cast<double>(r.validation_loss),
                r.tokens_per_second, r.step_s, r.compute_s, r.transfer_s, r.waiting_s, r.tree_s, r.optimizer_s,
                r.bytes_in, r.bytes_out, r.reissued, r.workers, r.unix_ms);
  return buf;
}

bool ParseStepRecord(const std::string& line, StepRecord* r) {
  double v[16];
  const char* keys[16] = {"step",   "tokens",    "loss",   "validation_loss", "tokens_per_second", "step_s",
                          "compute_s", "transfer_s", "waiting_s", "tree_s", "optimizer_s", "bytes_in",
                          "bytes_out", "reissued", "workers", "unix_ms"};
  for (int i = 0; i < 16; ++i) {
    if (!Field(line, keys[i], &v[i])) return false;
  }
  r->step = static_cast<int64_t>(v[0]);
  r->tokens = static_cast<int64_t>(v[1]);
  r->loss = static_cast<float>(v[2]);
  r->validation_loss = static_cast<float>(v[3]);
  r->tokens_per_second = v[4];
  r->step_s = v[5];
  r->compute_s = v[6];
  r->transfer_s = v[7];
  r->waiting_s = v[8];
  r->tree_s = v[9];
  r->optimizer_s = v[10];
  r->bytes_in = static_cast<int64_t>(v[11]);
  r->bytes_out = static_cast<int64_t>(v[12]);
  r->reissued = static_cast<int64_t>(v[13]);
  r->workers = static_cast<int>(v[14]);
  r->unix_ms = static_cast<int64_t>(v[15]);
  return true;
}

StatusOr<std::vector<StepRecord>> RestartHistory(const std::string& path, int64_t keep_through, int64_t* malformed) {
  std::vector<StepRecord> kept;
  std::ifstream in(path);
  std::string line;
  int64_t skipped = 0;
  while (std::getline(in, line)) {
    StepRecord record;
    if (!ParseStepRecord(line, &record)) {
      ++skipped;
    } else if (record.step <= keep_through) {
      kept.push_back(record);
    }
  }
  if (malformed != nullptr) *malformed = skipped;
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    for (const StepRecord& record : kept) out << StepRecordJson(record) << '\n';
    if (!out) return UnavailableError("cannot write run history " + temporary);
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) return UnavailableError("cannot replace run history " + path + ": " + ec.message());
  return kept;
}

Status AppendHistory(const std::string& path, const StepRecord& record) {
  std::ofstream out(path, std::ios::app);
  out << StepRecordJson(record) << '\n';
  out.flush();
  return out ? OkStatus() : UnavailableError("cannot append step " + std::to_string(record.step) + " to " + path);
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace lanlm::engine
