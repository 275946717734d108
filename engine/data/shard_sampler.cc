// SampleShard (engine/data/corpus.h): the data sampler as a pure function of (seed, step, shard),
// so any process can rebuild any shard and resuming needs no sampler state.
#include <cstring>
#include <string>

#include "engine/data/corpus.h"
#include "engine/base/random.h"

namespace lanlm::engine {

Status SampleShard(const std::vector<int32_t>& train, uint64_t seed, int64_t step, int64_t shard, int B, int T,
                   int32_t* tokens) {
  if (B < 1 || T < 1) {
    return InvalidArgumentError("shard shape B = " + std::to_string(B) + ", T = " + std::to_string(T) +
                                " must be positive");
  }
  const int64_t size = static_cast<int64_t>(train.size());
  if (size < int64_t{T} + 2) {
    return FailedPreconditionError("training split has " + std::to_string(size) +
                                   " tokens, fewer than context + 2 = " + std::to_string(int64_t{T} + 2));
  }
  // Offsets o in [0, size - T - 1], so that train[o + T] exists.
  const uint64_t windows = static_cast<uint64_t>(size - T);
  const uint64_t key = CounterRng::Mix(CounterRng::Mix(CounterRng::Mix(seed, 0x5348415244ull /* "SHARD" */),
                                                       static_cast<uint64_t>(step)),
                                       static_cast<uint64_t>(shard));
  for (int b = 0; b < B; ++b) {
    const int64_t o = static_cast<int64_t>(CounterRng::Below(key, static_cast<uint64_t>(b), windows));
    std::memcpy(tokens + int64_t{b} * (T + 1), train.data() + o, (static_cast<size_t>(T) + 1) * sizeof(int32_t));
  }
  return OkStatus();
}

}  // namespace lanlm::engine
