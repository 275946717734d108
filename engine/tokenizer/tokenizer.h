// engine/tokenizer/ owns text <-> token ids: training, encoding, decoding and the tokenizer file format.
// BpeTokenizer: byte-pair encoding as in the seed brief and DESIGN.md §4. Initial vocabulary: the special
// tokens, every character (UTF-8 code point) seen in training, the same characters with the end-of-word
// marker "</w>" appended, "\n", and " ". Merges are learned by pair frequency with incremental pair counts;
// encoding applies merges greedily by rank; unknown characters become <unk>; decoding turns "</w>" into a
// space. Runs of spaces that are not an end-of-word marker are words made of " " and can merge too. The exact
// pre-tokenisation (Decode(Encode(t)) == t for text of known characters) is in tokenizer.cc.
// Immutable after construction: thread-safe for concurrent Encode/Decode.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

inline constexpr int32_t kPadId = 0;
inline constexpr int32_t kUnkId = 1;
inline constexpr int32_t kBosId = 2;
inline constexpr int32_t kEosId = 3;

// Bytes of Serialize()'s last line, "crc32c XXXXXXXX\n".
inline constexpr size_t kTokenizerChecksumLineBytes = 16;

class BpeTokenizer {
 public:
  // Learns merges from `text` until the vocabulary holds `vocab_size` tokens (or no pair occurs
  // twice). INVALID_ARGUMENT when vocab_size is below the base vocabulary (4 special tokens,
  // "\n", " ", and each character of the text with and without "</w>": 6 + 2 x alphabet) or
  // above kMaxVocab. Deterministic: the same text and vocab_size give the same merges.
  static StatusOr<BpeTokenizer> Train(std::string_view text, int vocab_size);

  // Text format (documented in tokenizer_io.cc): a header line, one token / merge per line,
  // and a last line "crc32c XXXXXXXX" (CRC32C of everything before it).
  std::string Serialize() const;
  // Validates everything; errors name the line and field at fault. Data without the checksum
  // line (written before it existed) still loads, with checksummed() false.
  static StatusOr<BpeTokenizer> Deserialize(std::string_view data);
  // False when the data this tokenizer was read from had no checksum line.
  bool checksummed() const { return checksummed_; }
  Status SaveToFile(const std::string& path) const;
  static StatusOr<BpeTokenizer> LoadFromFile(const std::string& path);

  std::vector<int32_t> Encode(std::string_view text) const;
  // Decoding of ids outside [0, vocab_size) yields "" for that id (never a crash);
  // special tokens decode to "".
  std::string Decode(const int32_t* ids, int64_t n) const;
  std::string Decode(const std::vector<int32_t>& ids) const {
    return Decode(ids.data(), static_cast<int64_t>(ids.size()));
  }
  // The text one token contributes when decoded (with "</w>" already turned into " ").
  const std::string& TokenText(int32_t id) const;

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  // Learned merges (can exceed vocab_size minus the base tokens when two merges join to the
  // same text).
  int merge_count() const { return static_cast<int>(merges_.size()); }
  // Stable 64-bit hash of the serialised form without its checksum line (compared at cluster
  // join; unchanged since the line was added).
  uint64_t Hash() const;

 private:
  enum Kind : uint8_t { kSpecial = 0, kPiece = 1, kWordEnd = 2 };  // kWordEnd: raw text ends in "</w>"
  struct MergeInfo {
    int32_t rank;
    int32_t result;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Key of a non-special token in token_ids_: its text, plus the byte 0xff (never part of valid
  // UTF-8) for word-end tokens, so a text that literally contains "</w>" cannot collide.
  static std::string TokenKey(std::string_view text, bool word_end);
  // Adds a non-special token (no duplicate check); returns its id.
  int32_t AddToken(std::string text, bool word_end);
  // Fills the lookup tables below from tokens_/kinds_/merges_. INVALID_ARGUMENT when " " or
  // "\n" is missing or a merge is inconsistent (Deserialize checks these per line first).
  Status Build();
  // Appends the ids of one pre-tokenised word (see tokenizer.cc) to out.
  void EncodeWord(std::string_view word, bool word_end, std::vector<int32_t>& out) const;
  // Applies merges by rank (lowest first, leftmost first among equal ranks) in place.
  void ApplyMerges(std::vector<int32_t>& symbols) const;

  std::vector<std::string> tokens_;                     // raw token strings, "</w>" included
  std::vector<std::string> texts_;                      // token text without "</w>" (specials: their name)
  std::vector<uint8_t> kinds_;                          // Kind per id
  std::vector<std::string> decoded_;                    // TokenText() per id
  std::vector<std::pair<int32_t, int32_t>> merges_;     // in rank order
  std::unordered_map<std::string, int32_t> token_ids_;  // TokenKey -> id (non-special tokens)
  std::unordered_map<uint64_t, MergeInfo> merge_info_;  // PairKey(left, right) -> rank, result
  std::unordered_map<uint32_t, std::pair<int32_t, int32_t>> char_ids_;  // code point -> (piece, word-end), -1 if absent
  bool checksummed_ = true;  // false: read from data without the checksum line
  int32_t newline_id_ = -1;
  int32_t space_id_ = -1;
};

}  // namespace lanlm::engine
