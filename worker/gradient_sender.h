// GradientSender: streams one lease's gradient to the coordinator while the backward pass
// goes on (protocol 6). The compute thread hands it each range as the backward pass (and the
// block's tree sum) finishes it; a thread of its own encodes the range in the run's wire
// format, cuts it into CRC-checked GradientChunks and writes them, in the order received, and
// keeps the Commit checksum over the chunks in that order. It is the stream's only writer
// until Finish returns.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/base/status.h"
#include "engine/io/float_chunks.h"
#include "protos/cluster.grpc.pb.h"

namespace lanlm::worker {

class GradientSender {
 public:
  using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

  // total: floats in the gradient block (JoinReply.parameter_count).
  // write_mu: held for each write (the stream has other writers; see WorkState::write_mu).
  GradientSender(Stream& stream, std::mutex& write_mu, int64_t lease_id, int64_t total, engine::WireFormat wire);
  ~GradientSender();  // finishes (a sender must not outlive its stream)
  GradientSender(const GradientSender&) = delete;
  GradientSender& operator=(const GradientSender&) = delete;

  // block[begin, end) is final: it is sent soon, and must not change until Finish returns.
  // block points at float 0 of a whole gradient block.
  void Send(const float* block, int64_t begin, int64_t end);
  // Waits until every range is written; OK, or UNAVAILABLE when a write failed (the stream
  // is broken; later ranges were dropped).
  Status Finish();

  // The Commit checksum of the chunks written (valid after Finish).
  uint32_t commit_crc() const { return crc_; }
  // Gradient bytes written (valid after Finish).
  int64_t bytes() const { return bytes_; }

 private:
  struct Range {
    const float* block;
    int64_t begin;
    int64_t end;
  };
  void Loop();
  bool Write(const Range& range);

  Stream& stream_;
  std::mutex& write_mu_;
  int64_t lease_id_;
  int64_t total_;
  engine::WireFormat wire_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Range> queue_;  // guarded by mu_
  bool closing_ = false;     // guarded by mu_
  bool failed_ = false;      // the sender thread's only
  uint32_t crc_ = 0;
  int64_t bytes_ = 0;
  std::thread thread_;       // last: starts once the members above exist
};

}  // namespace lanlm::worker
