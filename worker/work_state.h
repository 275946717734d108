// Worker::WorkState: one Work stream's state, private to the worker's .cc files (worker.cc:
// the read loop; worker_relay.cc: the parameter fetch thread).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "protos/convert.h"
#include "worker/worker.h"

namespace lanlm::worker {

// One Work stream's state, shared by the read loop and the message handlers.
struct Worker::WorkState {
  grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* stream = nullptr;
  // gRPC allows one write in flight per stream, and after the Hello three threads write: the
  // compute thread (commits), its gradient sender, and the relay fetch (a ParamRequest, which
  // the coordinator can answer, and the lease complete and commit, before that Write returns).
  // Every write after the Hello holds this.
  std::mutex write_mu;
  std::string run_id;     // the run joined; parameters of another run are refused
  Status* status = nullptr;
  bool* made_progress = nullptr;
  // `writable` goes false when a write fails: the coordinator has ended the call (for example
  // right after the last step's commit). What it sent before that (the last CommitResult,
  // the Shutdown) is still in the stream, so keep reading until the end rather than
  // dropping it. `local_error` is a problem on this side: stop reading and cancel.
  bool writable = true;
  bool local_error = false;
  bool shut_down = false;
  SessionEnd end = SessionEnd::kRetry;
  grpc::ClientContext* context = nullptr;
  // Parameters being received: those of the lease on the compute thread (protocol 6 sends
  // them after their Lease), whose block the compute thread reads as they arrive.
  std::unique_ptr<protos::ChunkAssembler> incoming;
  int64_t incoming_version = -1;
  std::thread compute;    // the lease being computed (joined before the next, and at the end)
  // Protocol 7: the thread fetching the lease's parameters from a peer, and its call.
  std::thread fetch;
  std::unique_ptr<grpc::ClientContext> fetch_context;
  std::atomic<bool> fetch_cancelled{false};  // StopFetch: no fallback request
  LeaseOutcome outcome;   // written by the compute thread, read after joining it

  void FailLocally(Status error) {
    *status = std::move(error);
    local_error = true;
  }
};

}  // namespace lanlm::worker
