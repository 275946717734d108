// BpeTokenizer's text format: Serialize, Deserialize (validating), and file helpers.
//
// Format version 1, UTF-8, every line ends with "\n" (the last one too):
//   lanlm-bpe version=1 tokens=N merges=M      header: N tokens, M merges
//   <kind> <text>                              N lines, the token with id 0, 1, ..., N-1
//   <left> <right>                             M lines, merges in rank order (decimal ids)
//   crc32c XXXXXXXX                            CRC32C of all bytes before this line, 8 lowercase
//                                              hex digits: a flipped bit or reordered merge is
//                                              refused; data without this line (older files)
//                                              still loads, with checksummed() false
// kind: 's' special (ids 0-3 exactly: <pad> <unk> <bos> <eos>, and nowhere else), 'c' a piece
// (no "</w>"), 'e' a word-end piece (its text followed by "</w>"). text is escaped so that a line
// holds no space, tab, CR or line break: "\\" for a backslash, "\n", "\t", "\r", "\s" (space),
// "\xHH" for other bytes below 0x20 and 0x7f; every other byte is literal. Unescaped text is
// non-empty, valid UTF-8, and either all spaces, exactly "\n", or free of both. A merge joins a
// 'c' token (left) with a 'c' or 'e' token (right), both spaces or both not, never "\n"; the
// joined text (of the right's kind) must be a token. Deserialize checks every line and field,
// bounds N and M by the bytes present before reserving anything, and names line and field.
#include <cstdio>
#include <fstream>
#include <vector>

#include "engine/base/hash.h"
#include "engine/io/atomic_file.h"
#include "engine/model/model_config.h"
#include "engine/base/utf8.h"
#include "engine/tokenizer/token_escape.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

constexpr const char* kMagic = "lanlm-bpe";
constexpr int kFormatVersion = 1;
const char* const kSpecialNames[4] = {"<pad>", "<unk>", "<bos>", "<eos>"};
constexpr int64_t kMaxMerges = 8LL * kMaxVocab;
constexpr int64_t kMaxFileBytes = 256LL << 20;

// Parses a decimal integer in [0, max] without sign, spaces or leading '+'.
bool ParseCount(std::string_view s, int64_t max, int64_t* value) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *value = v;
  return true;
}

class LineReader {
 public:
  explicit LineReader(std::string_view data) : data_(data) {}
  int64_t line() const { return line_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ >= data_.size(); }
  size_t pos() const { return pos_; }
  Status Error(const std::string& message) const {
    return InvalidArgumentError("tokenizer line " + std::to_string(line_) + ": " + message);
  }
  // The next line without its "\n"; `what` names the expected content for the error.
  StatusOr<std::string_view> Next(const std::string& what) {
    ++line_;
    if (pos_ >= data_.size())
      return Error("missing " + what + " (the data ends after line " + std::to_string(line_ - 1) + ")");
    const size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) return Error("truncated " + what + " (no line break at the end of the data)");
    const std::string_view line = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  int64_t line_ = 0;
};

bool AllSpaces(std::string_view s) { return s.find_first_not_of(' ') == std::string_view::npos; }

// The counts of the header line "lanlm-bpe version=1 tokens=N merges=M", checked against the
// limits and against the bytes that follow (before anything is reserved).
struct Counts {
  int64_t tokens = 0;
  int64_t merges = 0;
};

StatusOr<Counts> ReadHeader(LineReader& reader) {
  LANLM_ASSIGN_OR_RETURN(const std::string_view header, reader.Next("header"));
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t space = header.find(' ', start);
    fields.push_back(header.substr(start, space == std::string_view::npos ? space : space - start));
    if (space == std::string_view::npos || fields.size() > 4) break;
    start = space + 1;
  }
  if (fields.size() != 4 || fields[0] != kMagic) {
    return reader.Error("expected the header 'lanlm-bpe version=1 tokens=N merges=M', got " + Quote(header));
  }
  const char* const names[3] = {"version=", "tokens=", "merges="};
  const int64_t maxima[3] = {1 << 20, kMaxVocab, kMaxMerges};
  int64_t values[3] = {0, 0, 0};
  for (int f = 0; f < 3; ++f) {
    const std::string_view field = fields[f + 1];
    const std::string name(names[f], std::char_traits<char>::length(names[f]) - 1);
    if (field.substr(0, name.size() + 1) != names[f]) {
      return reader.Error("field " + std::to_string(f + 2) + " must be '" + names[f] + "...', got " + Quote(field));
    }
    if (!ParseCount(field.substr(name.size() + 1), maxima[f], &values[f])) {
      return reader.Error("field '" + name + "' = " + Quote(field.substr(name.size() + 1)) +
                          " is not an integer in [0, " + std::to_string(maxima[f]) + "]");
    }
  }
  const int64_t version = values[0], n_tokens = values[1], n_merges = values[2];
  if (version != kFormatVersion) {
    return reader.Error("field 'version' = " + std::to_string(version) + " is not supported (expected " +
                        std::to_string(kFormatVersion) + ")");
  }
  if (n_tokens < 6)
    return reader.Error("field 'tokens' = " + std::to_string(n_tokens) + " is below 6 (4 special, \\n, space)");
  // Every token line takes at least 4 bytes ("c x\n"), every merge line 4 ("4 5\n"): counts
  // that the remaining data cannot hold are rejected before anything is reserved.
  const auto need = static_cast<uint64_t>(n_tokens) * 4 + static_cast<uint64_t>(n_merges) * 4;
  if (need > reader.remaining()) {
    return reader.Error("tokens = " + std::to_string(n_tokens) + " and merges = " + std::to_string(n_merges) +
                        " need at least " + std::to_string(need) + " bytes, but only " +
                        std::to_string(reader.remaining()) + " follow the header");
  }
  return Counts{n_tokens, n_merges};
}

// Checks the line "<kind> <text>" of a non-special token; sets text (unescaped) and word_end.
Status ReadTokenLine(const LineReader& reader, std::string_view line, const std::string& where, std::string& text,
                     bool* word_end) {
  std::string error;
  if (line.size() < 3 || line[1] != ' ') {
    return reader.Error(where + ": expected '<kind> <text>', got " + Quote(line));
  }
  if (line[0] != 'c' && line[0] != 'e') {
    return reader.Error(where + ", field 'kind' = " + Quote(line.substr(0, 1)) + " is not 'c' or 'e'" +
                        (line[0] == 's' ? " (only ids 0-3 are special)" : ""));
  }
  *word_end = line[0] == 'e';
  if (!Unescape(line.substr(2), text, error)) return reader.Error(where + ", field 'text': " + error);
  if (!IsValidUtf8(text)) return reader.Error(where + ", field 'text' " + Quote(text) + " is not valid UTF-8");
  const bool has_space = text.find(' ') != std::string::npos;
  const bool has_newline = text.find('\n') != std::string::npos;
  if ((has_space && (!AllSpaces(text) || *word_end)) || (has_newline && (text != "\n" || *word_end))) {
    return reader.Error(where + ", field 'text' " + Quote(text) +
                        ": spaces and line breaks only form 'c' tokens of their own");
  }
  return OkStatus();
}

// The last line, "crc32c XXXXXXXX": the CRC32C of data before it; then the data must end.
Status CheckChecksumLine(std::string_view data, LineReader& reader) {
  const size_t body = reader.pos();
  LANLM_ASSIGN_OR_RETURN(const std::string_view line, reader.Next("checksum line"));
  char expected[24];
  std::snprintf(expected, sizeof(expected), "crc32c %08x", static_cast<unsigned>(Crc32c(data.data(), body, 0)));
  if (line.substr(0, 7) != "crc32c ") {
    return reader.Error("unexpected data after the last merge: " + Quote(line) + " (expected 'crc32c XXXXXXXX')");
  }
  if (line != expected) {
    return reader.Error("checksum mismatch: the file says " + Quote(line) + ", its content has '" + expected +
                        "' (corrupted file)");
  }
  if (!reader.at_end()) {
    (void)reader.Next("");  // advances the line number to the extra line
    return reader.Error("unexpected data after the checksum line");
  }
  return OkStatus();
}

}  // namespace

std::string BpeTokenizer::Serialize() const {
  std::string out = std::string(kMagic) + " version=" + std::to_string(kFormatVersion) +
                    " tokens=" + std::to_string(tokens_.size()) + " merges=" + std::to_string(merges_.size()) + "\n";
  for (size_t i = 0; i < tokens_.size(); ++i) {
    out += kinds_[i] == kSpecial ? 's' : kinds_[i] == kWordEnd ? 'e' : 'c';
    out += ' ';
    AppendEscaped(texts_[i], out);
    out += '\n';
  }
  for (const auto& [left, right] : merges_) {
    out += std::to_string(left);
    out += ' ';
    out += std::to_string(right);
    out += '\n';
  }
  char line[32];
  std::snprintf(line, sizeof(line), "crc32c %08x\n", static_cast<unsigned>(Crc32c(out.data(), out.size(), 0)));
  out += line;
  return out;
}

StatusOr<BpeTokenizer> BpeTokenizer::Deserialize(std::string_view data) {
  LineReader reader(data);
  LANLM_ASSIGN_OR_RETURN(const Counts counts, ReadHeader(reader));
  const int64_t n_tokens = counts.tokens, n_merges = counts.merges;

  BpeTokenizer t;
  t.tokens_.reserve(static_cast<size_t>(n_tokens));
  t.texts_.reserve(static_cast<size_t>(n_tokens));
  t.kinds_.reserve(static_cast<size_t>(n_tokens));
  std::string text;
  for (int64_t id = 0; id < n_tokens; ++id) {
    LANLM_ASSIGN_OR_RETURN(const std::string_view line, reader.Next("token " + std::to_string(id)));
    const std::string where = "token " + std::to_string(id);
    if (id < 4) {
      if (line != std::string("s ") + kSpecialNames[id]) {
        return reader.Error(where + " must be 's " + kSpecialNames[id] + "', got " + Quote(line));
      }
      t.tokens_.emplace_back(kSpecialNames[id]);
      t.texts_.emplace_back(kSpecialNames[id]);
      t.kinds_.push_back(kSpecial);
      continue;
    }
    bool word_end = false;
    LANLM_RETURN_IF_ERROR(ReadTokenLine(reader, line, where, text, &word_end));
    const auto found = t.token_ids_.find(TokenKey(text, word_end));
    if (found != t.token_ids_.end()) {
      return reader.Error(where + " duplicates token " + std::to_string(found->second) + " (line " +
                          std::to_string(found->second + 2) + ")");
    }
    t.AddToken(text, word_end);
  }
  t.merges_.reserve(static_cast<size_t>(n_merges));
  std::unordered_map<uint64_t, int64_t> seen;
  for (int64_t r = 0; r < n_merges; ++r) {
    const std::string where = "merge " + std::to_string(r);
    LANLM_ASSIGN_OR_RETURN(const std::string_view line, reader.Next(where));
    const size_t space = line.find(' ');
    int64_t ids[2] = {0, 0};
    const std::string_view parts[2] = {line.substr(0, space),
                                       space == std::string_view::npos ? std::string_view() : line.substr(space + 1)};
    const char* const side[2] = {"left", "right"};
    if (space == std::string_view::npos) return reader.Error(where + ": expected '<left> <right>', got " + Quote(line));
    for (int s = 0; s < 2; ++s) {
      if (!ParseCount(parts[s], n_tokens - 1, &ids[s])) {
        return reader.Error(where + ", field '" + side[s] + "' = " + Quote(parts[s]) + " is not a token id in [0, " +
                            std::to_string(n_tokens) + ")");
      }
      const int64_t id = ids[s];
      if (id < 4 || t.texts_[id] == "\n" || (s == 0 && t.kinds_[id] == kWordEnd)) {
        return reader.Error(where + ", field '" + side[s] + "' = " + std::to_string(id) + " (" + Quote(t.tokens_[id]) +
                            ") cannot be the " + side[s] + " side of a merge");
      }
    }
    const auto left = static_cast<int32_t>(ids[0]), right = static_cast<int32_t>(ids[1]);
    if (AllSpaces(t.texts_[left]) != AllSpaces(t.texts_[right])) {
      return reader.Error(where + " joins spaces with non-spaces: " + Quote(t.tokens_[left]) + " + " +
                          Quote(t.tokens_[right]));
    }
    const std::string joined = t.texts_[left] + t.texts_[right];
    if (t.token_ids_.find(TokenKey(joined, t.kinds_[right] == kWordEnd)) == t.token_ids_.end()) {
      return reader.Error(where + ": " + Quote(t.tokens_[left]) + " + " + Quote(t.tokens_[right]) + " = " +
                          Quote(joined + (t.kinds_[right] == kWordEnd ? "</w>" : "")) + " is not a token");
    }
    const auto [it, inserted] = seen.emplace(PairKey(left, right), r);
    if (!inserted) return reader.Error(where + " repeats merge " + std::to_string(it->second));
    t.merges_.emplace_back(left, right);
  }
  t.checksummed_ = !reader.at_end();
  if (t.checksummed_) LANLM_RETURN_IF_ERROR(CheckChecksumLine(data, reader));
  LANLM_RETURN_IF_ERROR(t.Build());
  return t;
}

Status BpeTokenizer::SaveToFile(const std::string& path) const {
  const std::string data = Serialize();
  return WriteFileAtomically(path, {data});
}

StatusOr<BpeTokenizer> BpeTokenizer::LoadFromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open tokenizer file '" + path + "'");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return UnavailableError("cannot read tokenizer file '" + path + "'");
  if (size > kMaxFileBytes) {
    return InvalidArgumentError("tokenizer file '" + path + "' has " + std::to_string(size) +
                                " bytes, above the limit " + std::to_string(kMaxFileBytes));
  }
  in.seekg(0, std::ios::beg);
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), size);
  if (!in) return UnavailableError("reading tokenizer file '" + path + "' failed");
  auto t = Deserialize(data);
  if (!t.ok()) return Status(t.status().code(), "tokenizer file '" + path + "': " + t.status().message());
  return t;
}

}  // namespace lanlm::engine
