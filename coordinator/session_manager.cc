// Session bookkeeping for the Generate service: limits, ownership and the release path.
#include "coordinator/session_manager.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "engine/base/hash.h"
#include "engine/base/random.h"

namespace lanlm::coordinator {

using engine::FinishReason;

int64_t SessionKvBytes(const engine::ModelConfig& config) {
  return 2 * static_cast<int64_t>(config.n_layers) * config.context * config.dim * static_cast<int64_t>(sizeof(float));
}

namespace {

Status ValidateSessionId(const std::string& id) {
  if (id.size() > 128)
    return InvalidArgumentError("session_id is " + std::to_string(id.size()) + " bytes, at most 128");
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgumentError("session_id may hold only [A-Za-z0-9._-]");
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::shared_ptr<Session>> SessionManager::Create(const std::string& id,
                                                          std::shared_ptr<const ParamSnapshot> snapshot,
                                                          uint64_t stream, const std::string& client) {
  LANLM_RETURN_IF_ERROR(ValidateSessionId(id));
  const int64_t bytes = SessionKvBytes(snapshot->config);
  std::string final_id = id;
  {
    // Cheap checks before allocating the cache.
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes > limits_.max_kv_bytes) {
      return ResourceExhaustedError(
          "one session needs " + std::to_string(bytes) +
          " KV-cache bytes, above --generate-max-kv-mib = " + std::to_string(limits_.max_kv_bytes >> 20) + " MiB");
    }
    if (final_id.empty()) {
      if (id_key_ == 0) id_key_ = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
      do {
        final_id = "s-" + engine::Hex16(engine::CounterRng::Bits(id_key_, next_id_++));
      } while (sessions_.count(final_id) > 0);
    }
  }
  auto session = std::make_shared<Session>(final_id, std::move(snapshot));
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.count(final_id) > 0) {
    return Status(StatusCode::kAlreadyExists, "session " + final_id + " is already open");
  }
  LANLM_RETURN_IF_ERROR(MakeClientRoomLocked(client));
  MakeRoomLocked(bytes);
  if (static_cast<int>(sessions_.size()) >= limits_.max_sessions) {
    return ResourceExhaustedError("live sessions = " + std::to_string(sessions_.size()) +
                                  " reached --generate-max-sessions = " + std::to_string(limits_.max_sessions));
  }
  if (kv_bytes_ + bytes > limits_.max_kv_bytes) {
    return ResourceExhaustedError(
        "KV-cache memory " + std::to_string(kv_bytes_) + " + " + std::to_string(bytes) +
        " bytes would exceed --generate-max-kv-mib = " + std::to_string(limits_.max_kv_bytes >> 20) + " MiB");
  }
  session->client = client;
  session->owner = stream;
  session->busy = true;
  session->last_used = Clock::now();
  kv_bytes_ += bytes;
  sessions_.emplace(final_id, session);
  return session;
}

StatusOr<std::shared_ptr<Session>> SessionManager::Acquire(const std::string& id, uint64_t stream,
                                                           const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  // Another client's session answers as an unknown one: ids are not a way to probe others.
  if (it == sessions_.end() || it->second->client != client)
    return NotFoundError("session " + id + " is unknown, closed or expired");
  const std::shared_ptr<Session>& session = it->second;
  if (session->busy) return FailedPreconditionError("session " + id + " is generating on another request");
  session->owner = stream;
  session->busy = true;
  session->stop_request.store(FinishReason::kNone);
  session->last_used = Clock::now();
  return session;
}

bool SessionManager::EndGeneration(const std::shared_ptr<Session>& session, bool release) {
  std::lock_guard<std::mutex> lock(mu_);
  session->busy = false;
  session->last_used = Clock::now();
  if (session->released) return true;
  if (release || session->release_requested) {
    ReleaseLocked(session, FinishReason::kCancelled);
    return true;
  }
  return false;
}

void SessionManager::ReleaseLocked(const std::shared_ptr<Session>& session, FinishReason reason) {
  if (session->released) return;
  if (session->busy) {
    session->release_requested = true;
    FinishReason none = FinishReason::kNone;
    session->stop_request.compare_exchange_strong(none, reason);
    return;
  }
  session->released = true;
  auto it = sessions_.find(session->id);
  if (it != sessions_.end() && it->second == session) {
    sessions_.erase(it);
    kv_bytes_ -= SessionKvBytes(session->snapshot->config);
  }
  // Nobody decodes on an idle session: free the cache now, whoever still holds the pointer.
  std::vector<float>().swap(session->state.cache.k);
  std::vector<float>().swap(session->state.cache.v);
}

void SessionManager::Release(const std::shared_ptr<Session>& session, FinishReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseLocked(session, reason);
}

Status SessionManager::ReleaseById(const std::string& id, FinishReason reason, const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->client != client)
    return NotFoundError("session " + id + " is unknown, closed or expired");
  std::shared_ptr<Session> session = it->second;
  ReleaseLocked(session, reason);
  return OkStatus();
}

void SessionManager::ReleaseOwnedBy(uint64_t stream, FinishReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Session>> owned;
  for (const auto& [id, session] : sessions_) {
    if (session->owner == stream) owned.push_back(session);
  }
  for (const auto& session : owned) ReleaseLocked(session, reason);
}

void SessionManager::Detach(uint64_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, session] : sessions_) {
    if (session->owner == stream) session->owner = 0;
  }
}

int SessionManager::ExpireIdle(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto ttl = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits_.ttl_s));
  std::vector<std::shared_ptr<Session>> expired;
  for (const auto& [id, session] : sessions_) {
    if (!session->busy && now - session->last_used > ttl) expired.push_back(session);
  }
  for (const auto& session : expired) ReleaseLocked(session, FinishReason::kEvicted);
  return static_cast<int>(expired.size());
}

void SessionManager::ReleaseAll(FinishReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Session>> all;
  for (const auto& [id, session] : sessions_) all.push_back(session);
  for (const auto& session : all) ReleaseLocked(session, reason);
}

void SessionManager::MakeRoomLocked(int64_t bytes) {
  auto fits = [&] {
    return static_cast<int>(sessions_.size()) < limits_.max_sessions && kv_bytes_ + bytes <= limits_.max_kv_bytes;
  };
  while (!fits()) {
    std::shared_ptr<Session> oldest;
    for (const auto& [id, session] : sessions_) {
      if (session->busy || session->owner != 0) continue;
      if (!oldest || session->last_used < oldest->last_used) oldest = session;
    }
    if (!oldest) return;
    ReleaseLocked(oldest, FinishReason::kEvicted);
  }
}

Status SessionManager::MakeClientRoomLocked(const std::string& client) {
  while (true) {
    int held = 0;
    std::shared_ptr<Session> oldest_idle;
    for (const auto& [id, session] : sessions_) {
      if (session->client != client) continue;
      ++held;
      if (session->busy || session->owner != 0) continue;
      if (!oldest_idle || session->last_used < oldest_idle->last_used) oldest_idle = session;
    }
    if (held < limits_.max_per_client) return OkStatus();
    if (!oldest_idle) {
      return ResourceExhaustedError("this client holds " + std::to_string(held) +
                                    " live sessions, the most --generate-max-sessions-per-client = " +
                                    std::to_string(limits_.max_per_client) + " allows; close one first");
    }
    ReleaseLocked(oldest_idle, FinishReason::kEvicted);
  }
}

int SessionManager::sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(sessions_.size());
}

int SessionManager::generating() const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& [id, session] : sessions_) n += session->busy ? 1 : 0;
  return n;
}

int64_t SessionManager::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kv_bytes_;
}

}  // namespace lanlm::coordinator
