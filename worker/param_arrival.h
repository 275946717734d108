// ParamArrival: how much of the parameter block of the lease being computed has arrived. The
// Work stream's reader advances it as ParamChunks come in (in offset order, which is the
// model's forward order); the compute thread waits on it before each layer (engine
// ModelStreamHooks::params_ready), so the forward pass overlaps the download.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace lanlm::worker {

class ParamArrival {
 public:
  // A new lease: `arrived` floats are in place already (the whole block when cached).
  void Reset(int64_t arrived) {
    std::lock_guard<std::mutex> lock(mu_);
    arrived_ = arrived;
    abandoned_ = false;
  }
  // Floats [0, arrived) are in place (written before this call).
  void Advance(int64_t arrived) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      arrived_ = arrived;
    }
    cv_.notify_all();
  }
  // The rest will never come (the stream ended, or the worker stops): every Wait returns false.
  void Abandon() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      abandoned_ = true;
    }
    cv_.notify_all();
  }
  // Blocks until floats [0, end) are in place (true) or the block was abandoned (false).
  bool Wait(int64_t end) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return abandoned_ || arrived_ >= end; });
    return !abandoned_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t arrived_ = 0;
  bool abandoned_ = false;
};

}  // namespace lanlm::worker
