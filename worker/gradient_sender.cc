// Streams a lease's gradient range by range; see gradient_sender.h.
#include "worker/gradient_sender.h"

#include "engine/base/hash.h"
#include "protos/convert.h"

namespace lanlm::worker {

GradientSender::GradientSender(Stream& stream, std::mutex& write_mu, int64_t lease_id, int64_t total,
                               engine::WireFormat wire)
    : stream_(stream), write_mu_(write_mu), lease_id_(lease_id), total_(total), wire_(wire), thread_([this] { Loop(); }) {}

GradientSender::~GradientSender() { (void)Finish(); }  // a stream error was reported by a call before, or is moot

void GradientSender::Send(const float* block, int64_t begin, int64_t end) {
  if (begin >= end) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({block, begin, end});
  }
  cv_.notify_one();
}

Status GradientSender::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  return failed_ ? UnavailableError("stream broke while sending a gradient") : OkStatus();
}

void GradientSender::Loop() {
  while (true) {
    Range range{};
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing, everything written
      range = queue_.front();
      queue_.pop_front();
    }
    if (!failed_ && !Write(range)) failed_ = true;  // later ranges are dropped
  }
}

bool GradientSender::Write(const Range& range) {
  std::vector<v1::FloatChunk> chunks =
      protos::MakeChunks(range.block + range.begin, range.end - range.begin, protos::kMaxChunkBytes, wire_);
  v1::WorkerMessage out;
  for (v1::FloatChunk& chunk : chunks) {
    chunk.set_offset(chunk.offset() + range.begin);  // MakeChunks counts from the range's start
    chunk.set_total(total_);
    const uint32_t crc = chunk.crc32c();
    const auto bytes = static_cast<int64_t>(chunk.data().size());
    v1::GradientChunk* g = out.mutable_gradient_chunk();
    g->set_lease_id(lease_id_);
    *g->mutable_chunk() = std::move(chunk);
    bool written = false;
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      written = stream_.Write(out);
    }
    if (!written) return false;
    crc_ = engine::Crc32c(&crc, 4, crc_);
    bytes_ += bytes;
  }
  return true;
}

}  // namespace lanlm::worker
