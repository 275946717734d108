// The validating checkpoint reader (DESIGN.md §5, §8.3): header size, strict JSON, metadata
// checksum, config, tokenizer, tensor names, dtypes, shapes and offsets are all checked before
// any allocation sized by the file; then the data, against its CRC32C, the fingerprint and
// finiteness. Every error names the field and the values.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>

#include "engine/base/float_bits.h"
#include "engine/base/hash.h"
#include "engine/io/checkpoint_format.h"
#include "engine/io/json.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine::checkpoint_format {
namespace {

// Reads a checkpoint from an open file; every error is prefixed with the path by the caller.
class Reader {
 public:
  Reader(int fd, uint64_t file_size) : fd_(fd), file_size_(file_size) {}

  StatusOr<Checkpoint> Read() {
    if (file_size_ < 8) {
      return Error("is " + std::to_string(file_size_) +
                   " bytes, too short for a safetensors file (8-byte header length first)");
    }
    unsigned char len[8];
    LANLM_RETURN_IF_ERROR(ReadAt(0, len, 8));
    uint64_t header_len = 0;
    for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len[i]) << (8 * i);
    if (header_len > kMaxHeaderBytes) {
      return Error("header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
    }
    if (header_len > file_size_ - 8) {
      return Error("header length " + std::to_string(header_len) + " exceeds the " + std::to_string(file_size_ - 8) +
                   " bytes after the length field (truncated file?)");
    }
    std::string header(header_len, '\0');
    LANLM_RETURN_IF_ERROR(ReadAt(8, header.data(), header_len));
    if (header_len == 0 || header[0] != '{') return Error("header does not start with '{' (not a safetensors file?)");
    JsonLimits limits;
    limits.max_depth = 4;
    auto parsed = ParseJson(header, limits);
    if (!parsed.ok()) return Error("header: " + parsed.status().message());
    data_begin_ = 8 + header_len;
    data_size_ = file_size_ - data_begin_;
    return FromHeader(*parsed);
  }

 private:
  struct Entry {
    std::string name;
    uint64_t begin = 0, end = 0;
    int64_t block_offset = 0;
    int block = 0;  // 0 params, 1 m, 2 v, 3 outer momentum
    std::vector<int64_t> shape;
  };

  static constexpr int kBlocks = 4;
  static constexpr const char* kOuterPrefix = "optim.outer_m.";
  static Status Error(const std::string& what) { return DataLossError(what); }

  Status ReadAt(uint64_t offset, void* dest, uint64_t size) {
    auto* p = static_cast<char*>(dest);
    while (size > 0) {
      const ssize_t r = ::pread(fd_, p, size, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return UnavailableError(std::string("read failed: ") + std::strerror(errno));
      if (r == 0) return Error("unexpected end of file at byte " + std::to_string(offset));
      p += r;
      offset += static_cast<uint64_t>(r);
      size -= static_cast<uint64_t>(r);
    }
    return OkStatus();
  }

  StatusOr<std::string> Meta(const JsonValue& meta, const std::string& key) {
    const JsonValue* v = meta.Find(key);
    if (v == nullptr) return Error("metadata lacks \"" + key + "\"");
    return v->string();
  }

  StatusOr<int64_t> MetaInt(const JsonValue& meta, const std::string& key, int64_t lo, int64_t hi) {
    LANLM_ASSIGN_OR_RETURN(std::string s, Meta(meta, key));
    int64_t x = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || x < lo || x > hi) {
      return Error("metadata " + key + " = \"" + s + "\" is not an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
    }
    return x;
  }

  StatusOr<float> MetaFloat(const JsonValue& meta, const std::string& key) {
    LANLM_ASSIGN_OR_RETURN(std::string s, Meta(meta, key));
    float x = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !IsFiniteBits(x)) {
      return Error("metadata " + key + " = \"" + s + "\" is not a finite number");
    }
    return x;
  }

  StatusOr<uint64_t> MetaHex(const JsonValue& meta, const std::string& key, size_t digits) {
    LANLM_ASSIGN_OR_RETURN(std::string s, Meta(meta, key));
    uint64_t x = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), x, 16);
    if (s.size() != digits || ec != std::errc() || ptr != s.data() + s.size()) {
      return Error("metadata " + key + " = \"" + s + "\" is not " + std::to_string(digits) + " hex digits");
    }
    return x;
  }

  StatusOr<Checkpoint> FromHeader(const JsonValue& header) {
    if (!header.is_object()) return Error("header is not a JSON object");
    const JsonValue* meta = header.Find("__metadata__");
    if (meta == nullptr || !meta->is_object())
      return Error("header has no __metadata__ object (not a lanlm checkpoint)");
    LANLM_RETURN_IF_ERROR(CheckFormat(*meta));
    Checkpoint c;
    LANLM_ASSIGN_OR_RETURN(c.config, ReadConfig(*meta));
    LANLM_RETURN_IF_ERROR(ReadRunFields(*meta, c));
    LANLM_ASSIGN_OR_RETURN(std::vector<Entry> entries, CheckTensors(header, c.config));
    LANLM_ASSIGN_OR_RETURN(c.table_checksummed, CheckTable(*meta, entries));
    LANLM_RETURN_IF_ERROR(ReadData(*meta, entries, c));
    return c;
  }

  // Every metadata value a string, the format name and version, and metadata_crc32c.
  Status CheckFormat(const JsonValue& meta) {
    std::map<std::string, std::string> strings;
    for (const auto& [k, v] : meta.members()) {
      if (!v.is_string()) return Error("metadata " + k + " is not a string");
      strings[k] = v.string();
    }
    LANLM_ASSIGN_OR_RETURN(std::string format, Meta(meta, "format"));
    if (format != kFormatName) return Error("metadata format = \"" + format + "\", expected \"" + kFormatName + "\"");
    LANLM_ASSIGN_OR_RETURN(int64_t version, MetaInt(meta, "format_version", 0, 1 << 30));
    if (version != kFormatVersion) {
      return Error("format_version = " + std::to_string(version) + ", this build reads " +
                   std::to_string(kFormatVersion));
    }
    LANLM_ASSIGN_OR_RETURN(uint64_t meta_crc, MetaHex(meta, "metadata_crc32c", 8));
    if (const uint32_t actual = MetadataCrc(strings); actual != meta_crc) {
      return Error("metadata checksum mismatch: metadata_crc32c = " + Hex(meta_crc, 8) +
                   " in the header, metadata has " + Hex(actual, 8) + " (corrupted header)");
    }
    return OkStatus();
  }

  // model.<field> for every ModelConfig field, bounded, then ModelConfig::Validate.
  StatusOr<ModelConfig> ReadConfig(const JsonValue& meta) {
    ModelConfig m;
    const struct {
      const char* key;
      int* field;
      int64_t max;
    } ints[] = {{"model.vocab_size", &m.vocab_size, kMaxVocab},   {"model.dim", &m.dim, kMaxDim},
                {"model.n_layers", &m.n_layers, kMaxLayers},      {"model.n_heads", &m.n_heads, kMaxDim},
                {"model.ffn_hidden", &m.ffn_hidden, 4 * kMaxDim}, {"model.context", &m.context, kMaxContext}};
    for (const auto& f : ints) {
      LANLM_ASSIGN_OR_RETURN(int64_t x, MetaInt(meta, f.key, 0, f.max));
      *f.field = static_cast<int>(x);
    }
    LANLM_ASSIGN_OR_RETURN(m.norm_eps, MetaFloat(meta, "model.norm_eps"));
    LANLM_ASSIGN_OR_RETURN(m.rope_theta, MetaFloat(meta, "model.rope_theta"));
    if (Status s = m.Validate(); !s.ok()) return Error("model config: " + s.message());
    return m;
  }

  // step, seed, corpus_hash and run_id (absent in older files), tokenizer, training.<key>.
  Status ReadRunFields(const JsonValue& meta, Checkpoint& c) {
    LANLM_ASSIGN_OR_RETURN(c.step, MetaInt(meta, "step", 0, INT64_MAX));
    LANLM_ASSIGN_OR_RETURN(std::string seed, Meta(meta, "seed"));
    auto [ptr, ec] = std::from_chars(seed.data(), seed.data() + seed.size(), c.seed);
    if (seed.empty() || ec != std::errc() || ptr != seed.data() + seed.size()) {
      return Error("metadata seed = \"" + seed + "\" is not an unsigned 64-bit integer");
    }
    if (meta.Find("corpus_hash") != nullptr) {
      LANLM_ASSIGN_OR_RETURN(c.corpus_hash, MetaHex(meta, "corpus_hash", 16));
    }
    if (meta.Find("run_id") != nullptr) {  // absent in files written before run ids
      LANLM_ASSIGN_OR_RETURN(c.run_id, Meta(meta, "run_id"));
      if (!IsRunId(c.run_id)) return Error("metadata run_id = \"" + c.run_id.substr(0, 40) + "\" is not 32 hex digits");
    }
    LANLM_ASSIGN_OR_RETURN(c.tokenizer, Meta(meta, "tokenizer"));
    if (!c.tokenizer.empty()) {  // empty: a checkpoint without a tokenizer (tests, bare models)
      auto tokenizer = BpeTokenizer::Deserialize(c.tokenizer);
      if (!tokenizer.ok()) return Error("tokenizer: " + tokenizer.status().message());
      if (tokenizer->vocab_size() != c.config.vocab_size) {
        return Error("tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                     " tokens, model.vocab_size = " + std::to_string(c.config.vocab_size));
      }
    }
    for (const auto& [k, v] : meta.members()) {
      if (k.rfind("training.", 0) == 0) c.training[k.substr(9)] = v.string();
      if (k.rfind("outer.", 0) == 0) c.outer[k.substr(6)] = v.string();
    }
    return OkStatus();
  }

  // With every size checked against the config and the file, allocates and reads the data
  // section, then checks data_crc32c, the fingerprint and that every value is finite.
  Status ReadData(const JsonValue& meta, const std::vector<Entry>& entries, Checkpoint& c) {
    LANLM_ASSIGN_OR_RETURN(uint64_t fingerprint, MetaHex(meta, "fingerprint", 16));
    LANLM_ASSIGN_OR_RETURN(uint64_t crc, MetaHex(meta, "data_crc32c", 8));
    const int64_t n = ParameterCount(c.config);
    c.params.resize(static_cast<size_t>(n));
    const auto has_block = [&](int b) {
      return std::any_of(entries.begin(), entries.end(), [b](const Entry& e) { return e.block == b; });
    };
    if (has_block(1)) {
      c.adam_m.resize(static_cast<size_t>(n));
      c.adam_v.resize(static_cast<size_t>(n));
    }
    if (has_block(3)) c.outer_m.resize(static_cast<size_t>(n));
    if (c.outer_m.empty() != c.outer.empty()) {
      return Error(c.outer_m.empty() ? "outer.* round settings without an outer momentum (optim.outer_m.*)"
                                     : "outer momentum (optim.outer_m.*) without its outer.* round settings");
    }
    float* blocks[kBlocks] = {c.params.data(), c.adam_m.data(), c.adam_v.data(), c.outer_m.data()};
    uint32_t actual_crc = 0;
    for (const Entry& e : entries) {  // in file order, so the CRC chains over the data section
      float* dest = blocks[e.block] + e.block_offset;
      LANLM_RETURN_IF_ERROR(ReadAt(data_begin_ + e.begin, dest, e.end - e.begin));
      actual_crc = Crc32c(dest, e.end - e.begin, actual_crc);
    }
    if (actual_crc != crc) {
      return Error("data checksum mismatch: data_crc32c = " + Hex(crc, 8) + " in the header, data has " +
                   Hex(actual_crc, 8) + " (corrupted file)");
    }
    if (const uint64_t fp = Fingerprint(c.params.data(), n); fp != fingerprint) {
      return Error("parameter fingerprint " + Hex(fp, 16) + " differs from " + Hex(fingerprint, 16) + " in the header");
    }
    for (const Entry& e : entries) {
      const float* p = blocks[e.block] + e.block_offset;
      const int64_t count = static_cast<int64_t>((e.end - e.begin) / 4);
      if (const int64_t bad = FirstNonFinite(p, count); bad >= 0) {
        return Error("tensor " + e.name + " element " + std::to_string(bad) + " is not finite");
      }
    }
    return OkStatus();
  }

  // Compares tensors_crc32c with the table read; false when the file (older) has none.
  StatusOr<bool> CheckTable(const JsonValue& meta, const std::vector<Entry>& entries) {
    if (meta.Find("tensors_crc32c") == nullptr) return false;
    LANLM_ASSIGN_OR_RETURN(uint64_t table_crc, MetaHex(meta, "tensors_crc32c", 8));
    std::vector<TableRow> rows;
    for (const Entry& e : entries) rows.push_back({e.name, e.shape, e.begin, e.end});
    if (const uint32_t actual = TableCrc(rows); actual != table_crc) {
      return Error("tensor table checksum mismatch: tensors_crc32c = " + Hex(table_crc, 8) +
                   " in the header, the table has " + Hex(actual, 8) + " (tensors moved, swapped or renamed)");
    }
    return true;
  }

  // Checks names, dtypes, shapes and offsets of every tensor entry against the config and the
  // data section; returns the entries sorted by file offset.
  StatusOr<std::vector<Entry>> CheckTensors(const JsonValue& header, const ModelConfig& m) {
    const auto tensors = ParameterTensors(m);
    std::map<std::string, std::pair<const TensorInfo*, int>> expected;  // name -> (tensor, block)
    const char* prefixes[kBlocks] = {"", "optim.m.", "optim.v.", kOuterPrefix};
    for (int b = 0; b < kBlocks; ++b) {
      for (const TensorInfo& t : tensors) expected[prefixes[b] + t.name] = {&t, b};
    }
    std::vector<Entry> entries;
    std::set<std::string> seen;
    for (const auto& [name, e] : header.members()) {
      if (name == "__metadata__") continue;
      auto it = expected.find(name);
      if (it == expected.end()) return Error("unexpected tensor " + name + " for config " + m.ToString());
      LANLM_ASSIGN_OR_RETURN(Entry entry, CheckEntry(name, e, *it->second.first));
      entry.block = it->second.second;
      seen.insert(name);
      entries.push_back(std::move(entry));
    }
    LANLM_RETURN_IF_ERROR(CheckAllPresent(tensors, seen));
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    uint64_t at = 0;
    for (const Entry& e : entries) {
      if (e.begin != at) {
        return Error("tensor " + e.name + " starts at byte " + std::to_string(e.begin) +
                     " of the data section, expected " + std::to_string(at) +
                     (e.begin < at ? " (overlaps the previous tensor)" : " (gap)"));
      }
      at = e.end;
    }
    if (at != data_size_) {
      return Error("tensors cover " + std::to_string(at) + " bytes but the data section has " +
                   std::to_string(data_size_));
    }
    return entries;
  }

  // One tensor entry {"dtype":"F32","shape":[...],"data_offsets":[begin,end]} against the
  // tensor t it names (block left 0 for the caller).
  StatusOr<Entry> CheckEntry(const std::string& name, const JsonValue& e, const TensorInfo& t) {
    if (!e.is_object()) return Error("tensor " + name + ": entry is not an object");
    for (const auto& [k, unused] : e.members()) {
      if (k != "dtype" && k != "shape" && k != "data_offsets") return Error("tensor " + name + ": unknown field " + k);
    }
    const JsonValue* dtype = e.Find("dtype");
    const JsonValue* shape = e.Find("shape");
    const JsonValue* offsets = e.Find("data_offsets");
    if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
      return Error("tensor " + name + ": needs dtype, shape and data_offsets");
    }
    if (!dtype->is_string() || dtype->string() != "F32") {
      return Error("tensor " + name + " has dtype " + (dtype->is_string() ? dtype->string() : dtype->Serialize()) +
                   ", only F32 is supported");
    }
    if (!shape->is_array() || shape->items().size() > 8) return Error("tensor " + name + ": shape is not a short array");
    std::vector<int64_t> dims;
    for (const JsonValue& d : shape->items()) {
      auto v = d.AsInt64();
      if (!v.ok()) return Error("tensor " + name + ": shape " + v.status().message());
      dims.push_back(*v);
    }
    if (dims != t.shape) {
      return Error("tensor " + name + " has shape " + ShapeText(dims) + ", expected " + ShapeText(t.shape));
    }
    if (!offsets->is_array() || offsets->items().size() != 2) {
      return Error("tensor " + name + ": data_offsets is not [begin, end]");
    }
    auto b = offsets->items()[0].AsInt64();
    auto en = offsets->items()[1].AsInt64();
    if (!b.ok() || !en.ok() || *b < 0 || *en < *b) {
      return Error("tensor " + name + ": data_offsets " + offsets->Serialize() + " is not 0 <= begin <= end");
    }
    const uint64_t begin = static_cast<uint64_t>(*b), end = static_cast<uint64_t>(*en);
    if (end - begin != 4 * static_cast<uint64_t>(t.size)) {
      return Error("tensor " + name + ": data_offsets " + offsets->Serialize() + " span " +
                   std::to_string(end - begin) + " bytes, shape needs " + std::to_string(4 * t.size));
    }
    if (end > data_size_) {
      return Error("tensor " + name + ": data_offsets end " + std::to_string(end) + " is past the " +
                   std::to_string(data_size_) + "-byte data section (truncated file?)");
    }
    return Entry{name, begin, end, t.offset, 0, t.shape};
  }

  // Every parameter tensor present, and the AdamW moments all or none.
  Status CheckAllPresent(const std::vector<TensorInfo>& tensors, const std::set<std::string>& seen) {
    int with_moments = 0;
    for (const TensorInfo& t : tensors) {
      if (seen.count(t.name) == 0) return Error("missing tensor " + t.name);
      with_moments += seen.count("optim.m." + t.name) > 0;
      with_moments += seen.count("optim.v." + t.name) > 0;
    }
    int with_outer = 0;
    for (const TensorInfo& t : tensors) with_outer += seen.count(kOuterPrefix + t.name) > 0;
    if (with_outer != 0 && with_outer != static_cast<int>(tensors.size())) {
      for (const TensorInfo& t : tensors) {
        if (seen.count(kOuterPrefix + t.name) == 0) {
          return Error("missing tensor " + std::string(kOuterPrefix) + t.name + " (outer momentum is partial)");
        }
      }
    }
    if (with_moments != 0 && with_moments != 2 * static_cast<int>(tensors.size())) {
      for (const TensorInfo& t : tensors) {
        for (const char* p : {"optim.m.", "optim.v."}) {
          if (seen.count(p + t.name) == 0) return Error("missing tensor " + std::string(p) + t.name + " (moments are partial)");
        }
      }
    }
    return OkStatus();
  }

  int fd_;
  uint64_t file_size_;
  uint64_t data_begin_ = 0;
  uint64_t data_size_ = 0;
};

}  // namespace

StatusOr<Checkpoint> ReadCheckpoint(int fd, uint64_t file_size) { return Reader(fd, file_size).Read(); }

}  // namespace lanlm::engine::checkpoint_format
