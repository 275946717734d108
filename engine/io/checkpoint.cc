// Checkpoint files in the safetensors layout (DESIGN.md §5): writing (atomic, streamed from
// the parameter vectors without a copy) and opening a file to load. The format is described at
// SaveCheckpoint below; checkpoint_format.{h,cc} holds what writing and reading share, and
// checkpoint_reader.cc the validating reader.
#include "engine/io/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <random>

#include "engine/base/hash.h"
#include "engine/io/atomic_file.h"
#include "engine/io/checkpoint_format.h"
#include "engine/io/json.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {

using checkpoint_format::FloatText;
using checkpoint_format::Hex;
using checkpoint_format::kFormatName;
using checkpoint_format::kFormatVersion;
using checkpoint_format::MetadataCrc;
using checkpoint_format::TableCrc;
using checkpoint_format::TableRow;

namespace {

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
  if (!c.outer_m.empty() && c.outer_m.size() != n) {
    return InvalidArgumentError("outer momentum holds " + std::to_string(c.outer_m.size()) + " values, expected 0 or " +
                                std::to_string(n));
  }
  if (c.outer_m.empty() != c.outer.empty()) {
    return InvalidArgumentError("outer momentum and its round settings must be saved together");
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
// optim.m.* and optim.v.* in the same order when present, then optim.outer_m.* when present,
// all float32 little-endian.
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
  if (!c.outer_m.empty()) data.push_back(bytes(c.outer_m));
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
  for (const auto& [k, v] : c.outer) put("outer." + k, v);
  put("step", std::to_string(c.step));
  put("seed", std::to_string(c.seed));
  if (c.corpus_hash != 0) put("corpus_hash", Hex(c.corpus_hash, 16));
  if (!c.run_id.empty()) put("run_id", c.run_id);
  put("tokenizer", c.tokenizer);
  put("fingerprint", Hex(Fingerprint(c.params.data(), n), 16));
  put("data_crc32c", Hex(crc, 8));
  std::vector<std::string> prefixes = {""};  // in data-section order
  if (moments) prefixes.insert(prefixes.end(), {"optim.m.", "optim.v."});
  if (!c.outer_m.empty()) prefixes.push_back("optim.outer_m.");
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
  auto result = checkpoint_format::ReadCheckpoint(fd, static_cast<uint64_t>(st.st_size));
  ::close(fd);
  if (!result.ok()) {
    return Status(result.status().code(), "checkpoint " + path + ": " + result.status().message());
  }
  return result;
}

}  // namespace lanlm::engine
