// Checkpoint files in the safetensors layout (DESIGN.md §5): writing (atomic, streamed from
// the parameter vectors without a copy) and loading with validation of every field before any
// allocation sized by the file. The format itself is described at SaveCheckpoint below.
#include "engine/io/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

#include "engine/io/atomic_file.h"
#include "engine/base/float_bits.h"
#include "engine/base/hash.h"
#include "engine/io/json.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

constexpr const char* kFormatName = "lanlm.checkpoint";
constexpr int kFormatVersion = 1;
// The header holds ~10 entries per layer plus the tokenizer text; 256 MiB is far above any
// real one and keeps a hostile length from turning into a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

std::string Hex(uint64_t x, int digits) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%0*llx", digits, static_cast<unsigned long long>(x));
  return buf;
}

std::string FloatText(float x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(x));  // 9 digits round-trip a float
  return buf;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

JsonValue TensorEntry(const TensorInfo& t, uint64_t begin) {
  JsonValue e = JsonValue::Object();
  e.Set("dtype", JsonValue::String("F32"));
  JsonValue shape = JsonValue::Array();
  for (int64_t d : t.shape) shape.Append(JsonValue::Integer(d));
  e.Set("shape", std::move(shape));
  JsonValue offsets = JsonValue::Array();
  offsets.Append(JsonValue::Integer(static_cast<int64_t>(begin)));
  offsets.Append(JsonValue::Integer(static_cast<int64_t>(begin + 4 * static_cast<uint64_t>(t.size))));
  e.Set("data_offsets", std::move(offsets));
  return e;
}

// CRC32C over every metadata entry except metadata_crc32c itself, in key order, each as
// (u64 key length, key, u64 value length, value): any change to a key or value shows, while the
// tensor entries are fully determined by the config and checked field by field.
uint32_t MetadataCrc(const std::map<std::string, std::string>& meta) {
  uint32_t crc = 0;
  auto add = [&](const std::string& s) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(s.size()) >> (8 * i));
    crc = Crc32c(len, 8, crc);
    crc = Crc32c(s.data(), s.size(), crc);
  };
  for (const auto& [k, v] : meta) {
    if (k == "metadata_crc32c") continue;
    add(k);
    add(v);
  }
  return crc;
}

// One row of the tensor table, as TableCrc binds it.
struct TableRow {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // data_offsets
  const TensorInfo* info = nullptr;  // when saving
};

// CRC32C over the tensor table in name order, each row as (u64 name length, name, "F32", u64
// rank, u64 dims, u64 begin, u64 end): with tensors_crc32c in the checksummed metadata, a
// swapped, moved or renamed tensor is refused even where its shape and size still fit.
uint32_t TableCrc(std::vector<TableRow> rows) {
  std::sort(rows.begin(), rows.end(), [](const TableRow& a, const TableRow& b) { return a.name < b.name; });
  uint32_t crc = 0;
  auto u64 = [&](uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    crc = Crc32c(b, 8, crc);
  };
  for (const TableRow& r : rows) {
    u64(r.name.size());
    crc = Crc32c(r.name.data(), r.name.size(), crc);
    crc = Crc32c("F32", 3, crc);
    u64(r.shape.size());
    for (int64_t d : r.shape) u64(static_cast<uint64_t>(d));
    u64(r.begin);
    u64(r.end);
  }
  return crc;
}

Status ValidateForSave(const Checkpoint& c) {
  LANLM_RETURN_IF_ERROR(c.config.Validate());
  const auto n = static_cast<size_t>(ParameterCount(c.config));
  if (c.params.size() != n) {
    return InvalidArgumentError("checkpoint has " + std::to_string(c.params.size()) + " parameters, config " +
                                c.config.ToString() + " needs " + std::to_string(n));
  }
  if (c.adam_m.size() != c.adam_v.size() || (!c.adam_m.empty() && c.adam_m.size() != n)) {
    return InvalidArgumentError("AdamW moments hold " + std::to_string(c.adam_m.size()) + " and " +
                                std::to_string(c.adam_v.size()) + " values, expected 0 or " + std::to_string(n));
  }
  if (c.step < 0) return InvalidArgumentError("step = " + std::to_string(c.step) + " is negative");
  if (!c.run_id.empty() && !IsRunId(c.run_id)) {
    return InvalidArgumentError("run_id \"" + c.run_id.substr(0, 40) + "\" is not 32 lowercase hex digits");
  }
  if (!c.tokenizer.empty()) {  // never write a checkpoint that LoadCheckpoint would reject
    auto tokenizer = BpeTokenizer::Deserialize(c.tokenizer);
    if (!tokenizer.ok()) return InvalidArgumentError("tokenizer: " + tokenizer.status().message());
    if (tokenizer->vocab_size() != c.config.vocab_size) {
      return InvalidArgumentError("tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                                  " tokens, config vocab_size = " + std::to_string(c.config.vocab_size));
    }
  }
  return OkStatus();
}

}  // namespace

std::string NewRunId() {
  std::random_device device;
  std::string id;
  for (int i = 0; i < 4; ++i) id += Hex(device(), 8);  // 4 x 32 bits
  return id;
}

bool IsRunId(const std::string& s) {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); });
}

// File layout: u64 little-endian N, then N bytes of JSON (space-padded so the data starts at
// an 8-byte boundary), then the data section: parameters in ParameterTensors order, then
// optim.m.* and optim.v.* in the same order when present, all float32 little-endian.
// __metadata__ (all values strings): format, format_version, model.<field> for every
// ModelConfig field, training.<key> for every training option, step, seed, tokenizer,
// fingerprint (16 hex digits, Fingerprint of the parameters), data_crc32c (8 hex digits) and
// metadata_crc32c (8 hex digits, see MetadataCrc).
Status SaveCheckpoint(const std::string& path, const Checkpoint& c) {
  static_assert(std::endian::native == std::endian::little, "checkpoints are written in host byte order");
  LANLM_RETURN_IF_ERROR(ValidateForSave(c));
  const auto tensors = ParameterTensors(c.config);
  const int64_t n = ParameterCount(c.config);
  const bool moments = !c.adam_m.empty();

  std::vector<std::string_view> data;
  auto bytes = [](const std::vector<float>& v) {
    return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  data.push_back(bytes(c.params));
  if (moments) {
    data.push_back(bytes(c.adam_m));
    data.push_back(bytes(c.adam_v));
  }
  uint32_t crc = 0;
  for (std::string_view d : data) crc = Crc32c(d.data(), d.size(), crc);

  std::map<std::string, std::string> meta;
  auto put = [&](const std::string& k, const std::string& v) { meta[k] = v; };
  put("format", kFormatName);
  put("format_version", std::to_string(kFormatVersion));
  put("model.vocab_size", std::to_string(c.config.vocab_size));
  put("model.dim", std::to_string(c.config.dim));
  put("model.n_layers", std::to_string(c.config.n_layers));
  put("model.n_heads", std::to_string(c.config.n_heads));
  put("model.ffn_hidden", std::to_string(c.config.ffn_hidden));
  put("model.context", std::to_string(c.config.context));
  put("model.norm_eps", FloatText(c.config.norm_eps));
  put("model.rope_theta", FloatText(c.config.rope_theta));
  for (const auto& [k, v] : c.training) put("training." + k, v);
  put("step", std::to_string(c.step));
  put("seed", std::to_string(c.seed));
  if (c.corpus_hash != 0) put("corpus_hash", Hex(c.corpus_hash, 16));
  if (!c.run_id.empty()) put("run_id", c.run_id);
  put("tokenizer", c.tokenizer);
  put("fingerprint", Hex(Fingerprint(c.params.data(), n), 16));
  put("data_crc32c", Hex(crc, 8));
  const std::vector<std::string> prefixes =
      moments ? std::vector<std::string>{"", "optim.m.", "optim.v."} : std::vector<std::string>{""};
  std::vector<TableRow> table;
  for (size_t block = 0; block < prefixes.size(); ++block) {
    for (const TensorInfo& t : tensors) {
      const uint64_t begin =
          4 * (static_cast<uint64_t>(block) * static_cast<uint64_t>(n) + static_cast<uint64_t>(t.offset));
      table.push_back({prefixes[block] + t.name, t.shape, begin, begin + 4 * static_cast<uint64_t>(t.size), &t});
    }
  }
  put("tensors_crc32c", Hex(TableCrc(table), 8));
  put("metadata_crc32c", Hex(MetadataCrc(meta), 8));

  JsonValue header = JsonValue::Object();
  JsonValue meta_json = JsonValue::Object();
  for (const auto& [k, v] : meta) meta_json.Set(k, JsonValue::String(v));
  header.Set("__metadata__", std::move(meta_json));
  for (const TableRow& row : table) header.Set(row.name, TensorEntry(*row.info, row.begin));
  std::string json = header.Serialize();
  json.append((8 - json.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(json.size()) >> (8 * i));

  std::vector<std::string_view> pieces = {std::string_view(reinterpret_cast<const char*>(len), 8), json};
  pieces.insert(pieces.end(), data.begin(), data.end());
  return WriteFileAtomically(path, pieces);
}

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
    int block = 0;  // 0 params, 1 m, 2 v
    std::vector<int64_t> shape;
  };

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
    std::map<std::string, std::string> strings;
    for (const auto& [k, v] : meta->members()) {
      if (!v.is_string()) return Error("metadata " + k + " is not a string");
      strings[k] = v.string();
    }
    LANLM_ASSIGN_OR_RETURN(std::string format, Meta(*meta, "format"));
    if (format != kFormatName) return Error("metadata format = \"" + format + "\", expected \"" + kFormatName + "\"");
    LANLM_ASSIGN_OR_RETURN(int64_t version, MetaInt(*meta, "format_version", 0, 1 << 30));
    if (version != kFormatVersion) {
      return Error("format_version = " + std::to_string(version) + ", this build reads " +
                   std::to_string(kFormatVersion));
    }

    LANLM_ASSIGN_OR_RETURN(uint64_t meta_crc, MetaHex(*meta, "metadata_crc32c", 8));
    if (const uint32_t actual = MetadataCrc(strings); actual != meta_crc) {
      return Error("metadata checksum mismatch: metadata_crc32c = " + Hex(meta_crc, 8) +
                   " in the header, metadata has " + Hex(actual, 8) + " (corrupted header)");
    }

    Checkpoint c;
    ModelConfig& m = c.config;
    int64_t x;
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.vocab_size", 0, kMaxVocab));
    m.vocab_size = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.dim", 0, kMaxDim));
    m.dim = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.n_layers", 0, kMaxLayers));
    m.n_layers = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.n_heads", 0, kMaxDim));
    m.n_heads = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.ffn_hidden", 0, 4 * kMaxDim));
    m.ffn_hidden = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(x, MetaInt(*meta, "model.context", 0, kMaxContext));
    m.context = static_cast<int>(x);
    LANLM_ASSIGN_OR_RETURN(m.norm_eps, MetaFloat(*meta, "model.norm_eps"));
    LANLM_ASSIGN_OR_RETURN(m.rope_theta, MetaFloat(*meta, "model.rope_theta"));
    if (Status s = m.Validate(); !s.ok()) return Error("model config: " + s.message());
    LANLM_ASSIGN_OR_RETURN(c.step, MetaInt(*meta, "step", 0, INT64_MAX));
    LANLM_ASSIGN_OR_RETURN(std::string seed, Meta(*meta, "seed"));
    auto [ptr, ec] = std::from_chars(seed.data(), seed.data() + seed.size(), c.seed);
    if (seed.empty() || ec != std::errc() || ptr != seed.data() + seed.size()) {
      return Error("metadata seed = \"" + seed + "\" is not an unsigned 64-bit integer");
    }
    if (meta->Find("corpus_hash") != nullptr) {
      LANLM_ASSIGN_OR_RETURN(c.corpus_hash, MetaHex(*meta, "corpus_hash", 16));
    }
    if (meta->Find("run_id") != nullptr) {  // absent in files written before run ids
      LANLM_ASSIGN_OR_RETURN(c.run_id, Meta(*meta, "run_id"));
      if (!IsRunId(c.run_id)) return Error("metadata run_id = \"" + c.run_id.substr(0, 40) + "\" is not 32 hex digits");
    }
    LANLM_ASSIGN_OR_RETURN(c.tokenizer, Meta(*meta, "tokenizer"));
    if (!c.tokenizer.empty()) {  // empty: a checkpoint without a tokenizer (tests, bare models)
      auto tokenizer = BpeTokenizer::Deserialize(c.tokenizer);
      if (!tokenizer.ok()) return Error("tokenizer: " + tokenizer.status().message());
      if (tokenizer->vocab_size() != m.vocab_size) {
        return Error("tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                     " tokens, model.vocab_size = " + std::to_string(m.vocab_size));
      }
    }
    LANLM_ASSIGN_OR_RETURN(uint64_t fingerprint, MetaHex(*meta, "fingerprint", 16));
    LANLM_ASSIGN_OR_RETURN(uint64_t crc, MetaHex(*meta, "data_crc32c", 8));
    for (const auto& [k, v] : meta->members()) {
      if (k.rfind("training.", 0) == 0) c.training[k.substr(9)] = v.string();
    }

    LANLM_ASSIGN_OR_RETURN(std::vector<Entry> entries, CheckTensors(header, m));
    LANLM_ASSIGN_OR_RETURN(c.table_checksummed, CheckTable(*meta, entries));
    const int64_t n = ParameterCount(m);
    // Only now, with every size checked against the config and the file, allocate.
    c.params.resize(static_cast<size_t>(n));
    if (entries.size() > ParameterTensors(m).size()) {
      c.adam_m.resize(static_cast<size_t>(n));
      c.adam_v.resize(static_cast<size_t>(n));
    }
    float* blocks[3] = {c.params.data(), c.adam_m.data(), c.adam_v.data()};
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
    return c;
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
    const char* prefixes[3] = {"", "optim.m.", "optim.v."};
    for (int b = 0; b < 3; ++b) {
      for (const TensorInfo& t : tensors) expected[prefixes[b] + t.name] = {&t, b};
    }
    std::vector<Entry> entries;
    std::set<std::string> seen;
    for (const auto& [name, e] : header.members()) {
      if (name == "__metadata__") continue;
      auto it = expected.find(name);
      if (it == expected.end()) return Error("unexpected tensor " + name + " for config " + m.ToString());
      const TensorInfo& t = *it->second.first;
      if (!e.is_object()) return Error("tensor " + name + ": entry is not an object");
      for (const auto& [k, unused] : e.members()) {
        if (k != "dtype" && k != "shape" && k != "data_offsets")
          return Error("tensor " + name + ": unknown field " + k);
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
      if (!shape->is_array() || shape->items().size() > 8)
        return Error("tensor " + name + ": shape is not a short array");
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
      seen.insert(name);
      entries.push_back({name, begin, end, t.offset, it->second.second, t.shape});
    }
    int with_moments = 0;
    for (const TensorInfo& t : tensors) {
      if (seen.count(t.name) == 0) return Error("missing tensor " + t.name);
      with_moments += seen.count("optim.m." + t.name) > 0;
      with_moments += seen.count("optim.v." + t.name) > 0;
    }
    if (with_moments != 0 && with_moments != 2 * static_cast<int>(tensors.size())) {
      for (const TensorInfo& t : tensors) {
        for (const char* p : {"optim.m.", "optim.v."}) {
          if (seen.count(p + t.name) == 0)
            return Error("missing tensor " + std::string(p) + t.name + " (moments are partial)");
        }
      }
    }
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

  int fd_;
  uint64_t file_size_;
  uint64_t data_begin_ = 0;
  uint64_t data_size_ = 0;
};

}  // namespace

StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFoundError("checkpoint " + path + " does not exist");
    return UnavailableError("cannot open checkpoint " + path + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError("checkpoint " + path + " is not a regular file");
  }
  Reader reader(fd, static_cast<uint64_t>(st.st_size));
  auto result = reader.Read();
  ::close(fd);
  if (!result.ok()) {
    return Status(result.status().code(), "checkpoint " + path + ": " + result.status().message());
  }
  return result;
}

}  // namespace lanlm::engine
