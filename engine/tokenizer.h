// BpeTokenizer: byte-pair encoding as in the seed brief and DESIGN.md §4.
// Initial vocabulary: the special tokens, every character (UTF-8 code point) seen in training,
// the same characters with the end-of-word marker "</w>" appended, "\n", and " ". Merges are
// learned by pair frequency with incremental pair counts; encoding applies merges greedily by
// rank; unknown characters become <unk>; decoding turns "</w>" into a space.
// Immutable after construction: thread-safe for concurrent Encode/Decode.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

inline constexpr int32_t kPadId = 0;
inline constexpr int32_t kUnkId = 1;
inline constexpr int32_t kBosId = 2;
inline constexpr int32_t kEosId = 3;

class BpeTokenizer {
 public:
  // Learns merges from `text` until the vocabulary holds `vocab_size` tokens (or no pair occurs
  // twice). INVALID_ARGUMENT when vocab_size is below 4 + the alphabet or above kMaxVocab.
  static StatusOr<BpeTokenizer> Train(std::string_view text, int vocab_size);

  // Text format (documented in tokenizer.cc): a header line and one token / merge per line.
  std::string Serialize() const;
  // Validates everything; errors name the line and field at fault.
  static StatusOr<BpeTokenizer> Deserialize(std::string_view data);
  Status SaveToFile(const std::string& path) const;
  static StatusOr<BpeTokenizer> LoadFromFile(const std::string& path);

  std::vector<int32_t> Encode(std::string_view text) const;
  // Decoding of ids outside [0, vocab_size) yields "" for that id (never a crash);
  // special tokens decode to "".
  std::string Decode(const int32_t* ids, int64_t n) const;
  std::string Decode(const std::vector<int32_t>& ids) const { return Decode(ids.data(), static_cast<int64_t>(ids.size())); }
  // The text one token contributes when decoded (with "</w>" already turned into " ").
  const std::string& TokenText(int32_t id) const;

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  // Stable 64-bit hash of the serialised form (compared at cluster join).
  uint64_t Hash() const;

 private:
  std::vector<std::string> tokens_;         // raw token strings, "</w>" included
  std::vector<std::string> decoded_;        // TokenText() per id
  std::vector<std::pair<int32_t, int32_t>> merges_;  // in rank order
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<uint64_t, int32_t> merge_rank_;  // (left << 32 | right) -> rank
  std::unordered_map<uint64_t, int32_t> merge_result_;  // (left << 32 | right) -> merged id
};

}  // namespace lanlm::engine
