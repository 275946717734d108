// SessionManager: the live Generate sessions (id -> KV cache + pinned parameter snapshot),
// their limits (count, KV memory, TTL) and the one release path shared by close, cancel,
// disconnect, expiry, eviction and shutdown. No gRPC and no decoding here.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/param_snapshot.h"
#include "engine/base/status.h"
#include "engine/generate/generation.h"

namespace lanlm::coordinator {

using Clock = std::chrono::steady_clock;

struct SessionLimits {
  int max_sessions = 64;
  int max_per_client = 16;  // live sessions one client (SessionManager::Create's `client`) may hold
  int64_t max_kv_bytes = int64_t{1} << 30;
  double ttl_s = 600.0;
};

// One session. `state` belongs to whoever holds the session busy (SessionManager::Acquire or
// Create); the fields below `stop_request` are guarded by the manager's mutex.
struct Session {
  Session(std::string session_id, std::shared_ptr<const ParamSnapshot> pinned)
      : id(std::move(session_id)), snapshot(std::move(pinned)), state(snapshot->config) {}
  const std::string id;
  const std::shared_ptr<const ParamSnapshot> snapshot;  // immutable, pinned for the session's life
  engine::DecodeState state;
  // Set by Release while busy: the running generation stops at its next step with this reason.
  std::atomic<engine::FinishReason> stop_request{engine::FinishReason::kNone};

  std::string client;  // who created it (token or peer host); only it may continue or close it
  uint64_t owner = 0;  // stream that holds it; 0 = none (awaiting resume)
  bool busy = false;   // a generation runs on it
  bool release_requested = false;
  bool released = false;
  Clock::time_point last_used;
};

// KV-cache bytes a session of this config holds: K and V, (L, T, C) floats each.
int64_t SessionKvBytes(const engine::ModelConfig& config);

// Thread-safe.
class SessionManager {
 public:
  explicit SessionManager(SessionLimits limits) : limits_(limits) {}

  // A new busy session of `client` owned by `stream`, pinned to `snapshot`. Empty id = a fresh
  // random one. INVALID_ARGUMENT for a malformed id, ALREADY_EXISTS for a live one,
  // RESOURCE_EXHAUSTED when a limit is reached even after evicting idle sessions no stream
  // holds (oldest first; for the per-client cap, the client's own).
  StatusOr<std::shared_ptr<Session>> Create(const std::string& id, std::shared_ptr<const ParamSnapshot> snapshot,
                                            uint64_t stream, const std::string& client = "");
  // Marks an existing session of `client` busy and moves it to `stream`. NOT_FOUND when
  // unknown, released, expired or another client's; FAILED_PRECONDITION while it generates.
  StatusOr<std::shared_ptr<Session>> Acquire(const std::string& id, uint64_t stream, const std::string& client = "");
  // The generation on `session` ended: not busy any more; a pending release happens now.
  // Returns true when the session was released.
  bool EndGeneration(const std::shared_ptr<Session>& session, bool release);

  // The one release path. Idle: removed and its KV cache freed now. Busy: the generation is
  // asked to stop with `reason` and the session is released when it ends. Idempotent.
  void Release(const std::shared_ptr<Session>& session, engine::FinishReason reason);
  // By id; NOT_FOUND when unknown or another client's.
  Status ReleaseById(const std::string& id, engine::FinishReason reason, const std::string& client = "");
  // Every session `stream` holds (a disconnect).
  void ReleaseOwnedBy(uint64_t stream, engine::FinishReason reason);
  // Sessions `stream` holds stay, resumable by id, until their TTL (a clean end of stream).
  void Detach(uint64_t stream);
  // Releases idle sessions unused for longer than the TTL; returns how many.
  int ExpireIdle(Clock::time_point now);
  void ReleaseAll(engine::FinishReason reason);

  int sessions() const;
  int generating() const;
  int64_t kv_bytes() const;
  const SessionLimits& limits() const { return limits_; }

 private:
  void ReleaseLocked(const std::shared_ptr<Session>& session, engine::FinishReason reason);
  // Evicts idle unowned sessions, oldest first, until one more of `bytes` fits.
  void MakeRoomLocked(int64_t bytes);
  // RESOURCE_EXHAUSTED naming --generate-max-sessions-per-client when `client` holds the cap
  // even after evicting its own idle unowned sessions.
  Status MakeClientRoomLocked(const std::string& client);

  const SessionLimits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  int64_t kv_bytes_ = 0;
  uint64_t next_id_ = 0;
  uint64_t id_key_ = 0;
};

}  // namespace lanlm::coordinator
