// A prompt fed to a fresh KV cache in chunks: the logits after each chunk. Shared by the decoder
// suite (chunks against the training forward) and the serving-weights suite (chunks against
// token-by-token decoding, bit for bit).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/generate/decoder.h"

namespace lanlm::engine::test_support_chunks {

// W: a ServingWeights, or a const float* parameter block. One row of V logits per chunk, after
// its last token; a failed Feed is a test failure.
template <typename W>
std::vector<std::vector<float>> FeedInChunks(const ModelConfig& c, const W& weights, const int32_t* tokens,
                                             const std::vector<int>& chunks, int threads) {
  ThreadPool pool(threads);
  Decoder decoder(c);
  KvCache cache(c);
  std::vector<std::vector<float>> out;
  int at = 0;
  for (int n : chunks) {
    std::vector<float> logits(c.vocab_size);
    const Status s = decoder.Feed(weights, tokens + at, n, cache, logits.data(), pool);
    EXPECT_TRUE(s.ok()) << s.ToString();
    at += n;
    out.push_back(std::move(logits));
  }
  return out;
}

}  // namespace lanlm::engine::test_support_chunks
