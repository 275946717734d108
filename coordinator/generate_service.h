// GenerateService: the lanlm.v1.Generate gRPC service (protos/generate.proto, DESIGN.md §6).
// Reactors only validate and queue; a few decode threads of the service run prefill and
// batched next-token steps (engine Decoder::FeedBatch) for all live generations, and write
// events back with at most one write in flight per stream. Not the session bookkeeping
// (session_manager.h), the decode threads (generate_scheduler.h) nor the generation loop
// (engine/generate/generation.h).
//
// Wiring (main.cc):
//   GenerateServiceOptions generate_options;  generate_options.RegisterFlags(flags);
//   ... flags.Parse(args); generate_options.Validate() ...
//   GenerateService generate(snapshot_source, generate_options, pool);
//   builder.RegisterService(&generate);  ... server->Wait() ...
//   generate.Shutdown();  server->Shutdown();   // generate outlives the server object's use
#pragma once

#include <cstdint>
#include <memory>

#include "coordinator/generate_metrics.h"
#include "coordinator/param_snapshot.h"
#include "engine/base/status.h"
#include "engine/base/thread_pool.h"
#include "engine/cli/flags.h"
#include "protos/client_auth.h"
#include "protos/generate.grpc.pb.h"

namespace lanlm::coordinator {

struct GenerateServiceOptions {
  int max_sessions = 64;                 // live sessions (open or awaiting resume)
  int max_sessions_per_client = 0;       // of those, one client's at most; 0 = a quarter of max_sessions
  int64_t max_kv_mib = 1024;             // KV-cache memory of all sessions together (MiB)
  double session_ttl_s = 600.0;          // an idle session is freed this long after its last use
  int64_t max_prompt_bytes = 64 * 1024;  // bytes of prompt text per request
  int decode_threads = 1;                // threads that run generation steps
  int max_batch = 32;                    // sessions per batched next-token step (1 = no batching)
  int max_queued_events = 64;            // per stream; decoding pauses while more are unsent
  std::string weights = "fp32";          // served format: fp32, bf16 or q8 (converted once per snapshot)
  // Not a flag: the coordinator's --client-token-file (coordinator/security.h). Set: every
  // call needs one of the tokens, and the token identifies the client; null: open, and the
  // client is the peer's address without its port.
  std::shared_ptr<const protos::ClientTokens> client_tokens;

  // --generate-max-sessions, --generate-max-sessions-per-client, --generate-max-kv-mib, --generate-session-ttl,
  // --generate-max-prompt-bytes, --generate-decode-threads, --generate-max-batch,
  // --generate-max-queued-events, --weights.
  void RegisterFlags(FlagSet& flags);
  Status Validate() const;
  // max_sessions_per_client, or its default.
  int PerClientCap() const;
};

// For the status service (protos/status.proto: sessions, kv_cache_bytes).
struct SessionStats {
  int sessions = 0;       // live sessions
  int generating = 0;     // of those, with a generation running now
  int64_t kv_bytes = 0;   // memory held by their KV caches
  int largest_batch = 0;  // most sessions advanced in one decoding step so far
};

class GenerateEngine;  // generate_stream.h: sessions, decode threads, stream registry

// Thread-safe. The engine pool is shared with the rest of the process (its ParallelFor calls
// are serialised), so decoding and training interleave step by step. The method is registered
// raw (bytes in, bytes out; generate_stream.h says why); clients see the usual typed service.
class GenerateService final : public lanlm::v1::Generate::WithRawCallbackMethod_Generate<lanlm::v1::Generate::Service> {
 public:
  // metrics: where sessions, tokens, latencies and stream ends are counted (null: its own).
  GenerateService(SnapshotSource snapshots, GenerateServiceOptions options, engine::ThreadPool& pool,
                  std::shared_ptr<GenerateMetrics> metrics = nullptr);
  ~GenerateService() override;  // calls Shutdown()
  GenerateService(const GenerateService&) = delete;
  GenerateService& operator=(const GenerateService&) = delete;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context) override;

  SessionStats Stats() const;
  const GenerateMetrics& metrics() const;

  // Ends every running generation (Done with EVICTED), finishes every open stream with
  // UNAVAILABLE, frees all sessions and joins the decode threads. New streams get UNAVAILABLE.
  // Idempotent; call it before grpc::Server::Shutdown so streams end promptly.
  void Shutdown();

 private:
  std::shared_ptr<GenerateEngine> generate_engine_;
};

}  // namespace lanlm::coordinator
