// Tests of checkpoint save/load: bit-exact round trips, and that every kind of damaged or
// foreign file is rejected with a message naming what is wrong (DESIGN.md §5, §8.3-4).
#include "engine/io/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "engine/io/atomic_file.h"
#include "engine/base/hash.h"
#include "engine/io/json.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {
namespace {

// A real tokenizer whose serialised text holds quotes, a backslash, a tab and non-ASCII
// characters, so the JSON escaping of the metadata is exercised.
const BpeTokenizer& TinyTokenizer() {
  static const BpeTokenizer tokenizer =
      BpeTokenizer::Train("say \"hi\" \\ to\tthe caf\xc3\xa9 \xe2\x82\xac\nthe the cat cat sat sat\n", 48).value();
  return tokenizer;
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.vocab_size = TinyTokenizer().vocab_size();
  c.dim = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.ffn_hidden = 12;
  c.context = 8;
  return c;
}

// Values chosen to catch any conversion: signed zero, denormals, extremes, non-round numbers.
float Value(int64_t i, int block) {
  static const float special[] = {-0.0f, 1e-45f, -3.4e38f, 3.4e38f, 1.17549e-38f};
  if (i < 5 && block == 0) return special[i];
  return static_cast<float>((i * 7919 + block * 104729) % 20011) / 997.0f - 10.0f;
}

Checkpoint MakeCheckpoint(bool moments) {
  Checkpoint c;
  c.config = TinyConfig();
  c.step = 123;
  c.seed = 18446744073709551615ull;
  c.training = {{"lr", "0.001"}, {"shards", "4"}, {"weird \"key\"", "line1\nline2 \xc3\xa9"}};
  c.tokenizer = TinyTokenizer().Serialize();
  const int64_t n = ParameterCount(c.config);
  for (int64_t i = 0; i < n; ++i) c.params.push_back(Value(i, 0));
  if (moments) {
    c.corpus_hash = 0xfedcba9876543210ull;  // a training checkpoint records its corpus
    for (int64_t i = 0; i < n; ++i) c.adam_m.push_back(Value(i, 1));
    for (int64_t i = 0; i < n; ++i) c.adam_v.push_back(std::abs(Value(i, 2)));
  }
  return c;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// An independent implementation of the metadata checksum (CRC32C over key-sorted,
// length-prefixed keys and values, skipping metadata_crc32c).
std::string MetadataCrc(const JsonValue& meta) {
  std::map<std::string, std::string> sorted;
  for (const auto& [k, v] : meta.members()) {
    if (k != "metadata_crc32c") sorted[k] = v.string();
  }
  std::string bytes;
  auto add = [&](const std::string& s) {
    const uint64_t n = s.size();
    bytes.append(reinterpret_cast<const char*>(&n), 8);
    bytes += s;
  };
  for (const auto& [k, v] : sorted) {
    add(k);
    add(v);
  }
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", Crc32c(bytes.data(), bytes.size()));
  return hex;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class CheckpointTest : public testing::Test {
 public:
  void SetUp() override {
    dir_ = (std::filesystem::path(testing::TempDir()) / ("lanlm_ckpt_" + std::to_string(getpid()) + "_" +
                                                         testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    good_ = dir_ + "/good.safetensors";
    ASSERT_TRUE(SaveCheckpoint(good_, MakeCheckpoint(true)).ok());
    bytes_ = Slurp(good_);
    std::memcpy(&header_len_, bytes_.data(), 8);
    header_ = bytes_.substr(8, header_len_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `data` to a fresh file and returns the load error message ("" if it loaded).
  std::string LoadError(const std::string& data) {
    const std::string path = dir_ + "/bad.safetensors";
    Spit(path, data);
    auto c = LoadCheckpoint(path);
    return c.ok() ? "" : c.status().message();
  }
  // The file with its header replaced by `header` (length field updated, padding kept 8-aligned).
  std::string WithHeader(std::string header) {
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + bytes_.substr(8 + header_len_);
  }
  std::string Replace(const std::string& from, const std::string& to) {
    std::string h = header_;
    const size_t at = h.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) h.replace(at, from.size(), to);
    return WithHeader(h);
  }

  std::string dir_, good_, bytes_, header_;
  uint64_t header_len_ = 0;
};

TEST_F(CheckpointTest, RoundTripIsBitExactWithMoments) {
  const Checkpoint want = MakeCheckpoint(true);
  auto got = LoadCheckpoint(good_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->config, want.config);
  EXPECT_EQ(got->step, want.step);
  EXPECT_EQ(got->seed, want.seed);
  EXPECT_EQ(got->corpus_hash, want.corpus_hash);
  EXPECT_EQ(got->training, want.training);
  EXPECT_EQ(got->tokenizer, want.tokenizer);
  EXPECT_TRUE(SameBits(got->params, want.params));
  EXPECT_TRUE(SameBits(got->adam_m, want.adam_m));
  EXPECT_TRUE(SameBits(got->adam_v, want.adam_v));
  // The data section is exactly the three blocks, little-endian, 8-byte aligned.
  EXPECT_EQ(header_len_ % 8, 0u);
  EXPECT_EQ(bytes_.size(), 8 + header_len_ + 3 * want.params.size() * 4);
  EXPECT_EQ(std::memcmp(bytes_.data() + 8 + header_len_, want.params.data(), want.params.size() * 4), 0);
}

TEST_F(CheckpointTest, RoundTripWithoutMomentsAndConfigFloats) {
  Checkpoint want = MakeCheckpoint(false);
  want.config.norm_eps = 1.2345678e-6f;
  want.config.rope_theta = 500000.0f;
  want.tokenizer.clear();
  want.training.clear();
  const std::string path = dir_ + "/nomoments.safetensors";
  ASSERT_TRUE(SaveCheckpoint(path, want).ok());
  auto got = LoadCheckpoint(path);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->config, want.config);
  EXPECT_TRUE(SameBits(got->params, want.params));
  EXPECT_TRUE(got->adam_m.empty());
  EXPECT_TRUE(got->adam_v.empty());
  EXPECT_TRUE(got->training.empty());
  // No corpus recorded: no key written (as in files from before the key existed), 0 read back.
  EXPECT_EQ(Slurp(path).find("corpus_hash"), std::string::npos);
  EXPECT_EQ(got->corpus_hash, 0u);
  EXPECT_EQ(Slurp(path).size() % 4, 0u);
}

TEST_F(CheckpointTest, HeaderIsSafetensorsJsonWithFingerprint) {
  auto h = ParseJson(header_);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  const JsonValue* meta = h->Find("__metadata__");
  ASSERT_NE(meta, nullptr);
  const Checkpoint c = MakeCheckpoint(true);
  char fp[17];
  std::snprintf(fp, sizeof(fp), "%016llx",
                static_cast<unsigned long long>(Fingerprint(c.params.data(), static_cast<int64_t>(c.params.size()))));
  EXPECT_EQ(meta->Find("fingerprint")->string(), fp);
  EXPECT_EQ(meta->Find("step")->string(), "123");
  EXPECT_EQ(meta->Find("model.dim")->string(), "8");
  EXPECT_EQ(meta->Find("training.shards")->string(), "4");
  const JsonValue* wq = h->Find("layers.1.attention.wq.weight");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->Find("dtype")->string(), "F32");
  EXPECT_EQ(wq->Find("shape")->Serialize(), "[8,8]");
  ASSERT_NE(h->Find("optim.v.output.weight"), nullptr);
}

TEST_F(CheckpointTest, RejectsNonExistentEmptyAndForeignFiles) {
  auto missing = LoadCheckpoint(dir_ + "/nope.safetensors");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.safetensors does not exist"), std::string::npos);

  EXPECT_NE(LoadError("").find("is 0 bytes, too short"), std::string::npos) << LoadError("");
  const std::string text = "In the beginning God created the heaven and the earth.\n";
  EXPECT_NE(LoadError(text).find("exceeds the limit"), std::string::npos) << LoadError(text);
  // A safetensors file without lanlm metadata.
  std::string foreign_header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  foreign_header.append((8 - foreign_header.size() % 8) % 8, ' ');
  std::string foreign(8, '\0');
  const uint64_t foreign_len = foreign_header.size();
  std::memcpy(foreign.data(), &foreign_len, 8);
  foreign += foreign_header + "abcd";
  EXPECT_NE(LoadError(foreign).find("no __metadata__"), std::string::npos) << LoadError(foreign);
  auto dir = LoadCheckpoint(dir_);
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos) << dir.status().message();
}

TEST_F(CheckpointTest, RejectsHugeHeaderLength) {
  std::string data = bytes_;
  const uint64_t huge = 1ull << 62;
  std::memcpy(data.data(), &huge, 8);
  EXPECT_NE(LoadError(data).find("header length 4611686018427387904 exceeds the limit"), std::string::npos)
      << LoadError(data);
  const uint64_t past_end = bytes_.size();
  std::memcpy(data.data(), &past_end, 8);
  EXPECT_NE(LoadError(data).find("truncated file?"), std::string::npos) << LoadError(data);
}

TEST_F(CheckpointTest, RejectsTruncatedFiles) {
  for (size_t keep : {size_t{4}, size_t{8}, size_t{8 + 100}, static_cast<size_t>(8 + header_len_), bytes_.size() - 1,
                      bytes_.size() - 4}) {
    EXPECT_NE(LoadError(bytes_.substr(0, keep)), "") << "accepted a file cut to " << keep << " bytes";
  }
  EXPECT_NE(LoadError(bytes_.substr(0, bytes_.size() - 4)).find("past the"), std::string::npos)
      << LoadError(bytes_.substr(0, bytes_.size() - 4));
  EXPECT_NE(LoadError(bytes_ + "xxxx").find("data section has"), std::string::npos);
}

TEST_F(CheckpointTest, RejectsEveryFlippedBitInDataByChecksum) {
  const size_t data_begin = 8 + header_len_;
  for (size_t pos : {data_begin, data_begin + 1, data_begin + 777, bytes_.size() / 2, bytes_.size() - 1}) {
    for (int bit : {0, 7}) {
      std::string data = bytes_;
      data[pos] = static_cast<char>(data[pos] ^ (1 << bit));
      const std::string err = LoadError(data);
      EXPECT_NE(err.find("data checksum mismatch"), std::string::npos) << "byte " << pos << ": " << err;
    }
  }
}

// Every `stride`-th byte of the length field and the header, flipped: the metadata checksum,
// strict JSON and the field-by-field tensor checks leave no single-byte change undetected.
void CheckHeaderFlips(CheckpointTest& t, size_t stride);

TEST_F(CheckpointTest, RejectsFlippedBytesInHeader) {
  CheckHeaderFlips(*this, 37);
  EXPECT_NE(LoadError(Replace("\"step\":\"123\"", "\"step\":\"124\"")).find("metadata checksum mismatch"),
            std::string::npos);
}

class SlowCheckpointTest : public CheckpointTest {};
TEST_F(SlowCheckpointTest, RejectsEveryFlippedByteInHeader) { CheckHeaderFlips(*this, 1); }

void CheckHeaderFlips(CheckpointTest& t, size_t stride) {
  for (size_t pos = 0; pos < 8 + t.header_len_; pos += (pos < 8 ? 1 : stride)) {
    std::string data = t.bytes_;
    data[pos] = static_cast<char>(data[pos] ^ 0x01);
    ASSERT_NE(t.LoadError(data), "") << "flipped byte " << pos << " ('" << t.bytes_[pos] << "') was not detected";
  }
}

TEST_F(CheckpointTest, RejectsWrongShapeMissingExtraAndBadDtype) {
  EXPECT_EQ(
      LoadError(Replace(R"("layers.0.attention.wq.weight":{"dtype":"F32","shape":[8,8])",
                        R"("layers.0.attention.wq.weight":{"dtype":"F32","shape":[4,16])")),
      "checkpoint " + dir_ + "/bad.safetensors: tensor layers.0.attention.wq.weight has shape [4,16], expected [8,8]");
  EXPECT_NE(LoadError(Replace(R"("norm.weight":{"dtype":"F32")", R"("norm.weight":{"dtype":"F16")"))
                .find("tensor norm.weight has dtype F16, only F32 is supported"),
            std::string::npos);
  EXPECT_NE(LoadError(Replace("\"norm.weight\":", "\"norm.weighz\":")).find("unexpected tensor norm.weighz"),
            std::string::npos);
  {
    auto h = ParseJson(header_);
    ASSERT_TRUE(h.ok());
    JsonValue without = JsonValue::Object();
    for (const auto& [k, v] : h->members()) {
      if (k != "optim.m.norm.weight") without.Set(k, v);
    }
    EXPECT_NE(LoadError(WithHeader(without.Serialize())).find("missing tensor optim.m.norm.weight"), std::string::npos)
        << LoadError(WithHeader(without.Serialize()));
    JsonValue extra = *h;
    JsonValue e = JsonValue::Object();
    e.Set("dtype", JsonValue::String("F32"));
    extra.Set("layers.2.ffn_norm.weight", e);
    EXPECT_NE(LoadError(WithHeader(extra.Serialize())).find("unexpected tensor layers.2.ffn_norm.weight"),
              std::string::npos);
    JsonValue no_norm = JsonValue::Object();
    for (const auto& [k, v] : h->members()) {
      if (k.find("norm.weight") == std::string::npos || k.find("layers.") != std::string::npos) no_norm.Set(k, v);
    }
    EXPECT_NE(LoadError(WithHeader(no_norm.Serialize())).find("missing tensor norm.weight"), std::string::npos)
        << LoadError(WithHeader(no_norm.Serialize()));
  }
}

TEST_F(CheckpointTest, RejectsBadConfigsEvenWithAValidMetadataChecksum) {
  auto edit = [&](const std::string& key, const std::string& value) {
    auto h = ParseJson(header_);
    EXPECT_TRUE(h.ok());
    JsonValue meta = *h->Find("__metadata__");
    meta.Set(key, JsonValue::String(value));
    meta.Set("metadata_crc32c", JsonValue::String(MetadataCrc(meta)));
    JsonValue out = *h;
    out.Set("__metadata__", meta);
    return LoadError(WithHeader(out.Serialize()));
  };
  EXPECT_EQ(edit("step", "7"), "");  // the checksum helper itself agrees with the writer
  EXPECT_NE(edit("model.n_heads", "3").find("model config: dim = 8 is not a multiple of n_heads = 3"),
            std::string::npos)
      << edit("model.n_heads", "3");
  const std::string V = std::to_string(TinyConfig().vocab_size);
  EXPECT_NE(edit("model.dim", "16").find("has shape [" + V + ",8], expected [" + V + ",16]"), std::string::npos)
      << edit("model.dim", "16");
  EXPECT_NE(edit("model.n_layers", "1").find("unexpected tensor layers.1."), std::string::npos);
  EXPECT_NE(edit("model.n_layers", "3").find("missing tensor layers.2.attention_norm.weight"), std::string::npos)
      << edit("model.n_layers", "3");
  EXPECT_NE(edit("model.vocab_size", "99999999999").find("model.vocab_size = \"99999999999\" is not an integer"),
            std::string::npos);
  EXPECT_NE(edit("model.norm_eps", "nan").find("model.norm_eps = \"nan\" is not a finite number"), std::string::npos);
  EXPECT_NE(
      edit("model.vocab_size", std::to_string(TinyConfig().vocab_size + 1))
          .find("tokenizer has " + V + " tokens, model.vocab_size = " + std::to_string(TinyConfig().vocab_size + 1)),
      std::string::npos);
  EXPECT_NE(edit("tokenizer", "not a tokenizer\n").find("tokenizer: "), std::string::npos)
      << edit("tokenizer", "not a tokenizer\n");
  EXPECT_NE(edit("format_version", "2").find("format_version = 2, this build reads 1"), std::string::npos);
  EXPECT_NE(edit("fingerprint", "0123456789abcdef").find("parameter fingerprint"), std::string::npos);
  EXPECT_NE(edit("seed", "-1").find("seed"), std::string::npos);
  EXPECT_NE(edit("step", "1e3").find("step"), std::string::npos);
}

// Issue 12: swapping the data offsets of two same-shape tensors (here two optimizer moments)
// passes every other check; tensors_crc32c binds the table, so the swap is refused. A file
// written before tensors_crc32c existed (and before run ids) still loads, unbound.
TEST_F(CheckpointTest, TensorTableIsBoundByItsChecksum) {
  auto h = ParseJson(header_);
  ASSERT_TRUE(h.ok());
  JsonValue swapped = *h;
  const char* a = "optim.m.layers.0.attention.wq.weight";
  const char* b = "optim.m.layers.0.attention.wk.weight";
  JsonValue ea = *h->Find(a), eb = *h->Find(b);
  ea.Set("data_offsets", *h->Find(b)->Find("data_offsets"));
  eb.Set("data_offsets", *h->Find(a)->Find("data_offsets"));
  swapped.Set(a, ea);
  swapped.Set(b, eb);
  EXPECT_NE(LoadError(WithHeader(swapped.Serialize())).find("tensor table checksum mismatch"), std::string::npos)
      << LoadError(WithHeader(swapped.Serialize()));

  // The same swap in an older file without tensors_crc32c goes unnoticed: that is why new
  // files always carry it. The unswapped older file loads and says it is unbound.
  auto legacy = [&](const JsonValue& header) {
    JsonValue meta = *header.Find("__metadata__");
    JsonValue trimmed = JsonValue::Object();
    for (const auto& [k, v] : meta.members()) {
      if (k != "tensors_crc32c" && k != "run_id") trimmed.Set(k, v);
    }
    trimmed.Set("metadata_crc32c", JsonValue::String(MetadataCrc(trimmed)));
    JsonValue out = header;
    out.Set("__metadata__", trimmed);
    return WithHeader(out.Serialize());
  };
  const std::string path = dir_ + "/legacy.safetensors";
  Spit(path, legacy(*h));
  auto old = LoadCheckpoint(path);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(old->table_checksummed);
  EXPECT_EQ(old->run_id, "");
  auto fresh = LoadCheckpoint(good_);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->table_checksummed);
}

TEST_F(CheckpointTest, RunIdRoundTripsAndIsValidated) {
  Checkpoint c = MakeCheckpoint(true);
  c.run_id = NewRunId();
  EXPECT_TRUE(IsRunId(c.run_id)) << c.run_id;
  EXPECT_NE(c.run_id, NewRunId());
  const std::string path = dir_ + "/run.safetensors";
  ASSERT_TRUE(SaveCheckpoint(path, c).ok());
  auto loaded = LoadCheckpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->run_id, c.run_id);
  c.run_id = "not-hex";
  EXPECT_EQ(SaveCheckpoint(path, c).code(), StatusCode::kInvalidArgument);
}

TEST_F(CheckpointTest, RejectsOverlappingOffsetsAndBadConfig) {
  // Point one tensor at another's bytes: an overlap (and a gap), rejected.
  auto h = ParseJson(header_);
  ASSERT_TRUE(h.ok());
  const std::string a = h->Find("layers.0.attention.wq.weight")->Find("data_offsets")->Serialize();
  const std::string b = h->Find("layers.0.attention.wk.weight")->Find("data_offsets")->Serialize();
  const std::string overlapped =
      Replace("\"layers.0.attention.wk.weight\":{\"dtype\":\"F32\",\"shape\":[8,8],\"data_offsets\":" + b,
              "\"layers.0.attention.wk.weight\":{\"dtype\":\"F32\",\"shape\":[8,8],\"data_offsets\":" + a);
  EXPECT_NE(LoadError(overlapped).find("overlaps the previous tensor"), std::string::npos) << LoadError(overlapped);

  // Saving a config that fails ModelConfig::Validate writes nothing.
  Checkpoint c = MakeCheckpoint(false);
  c.config.n_heads = 3;  // 8 % 3 != 0
  EXPECT_FALSE(SaveCheckpoint(dir_ + "/x.safetensors", c).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x.safetensors"));
}

TEST_F(CheckpointTest, RejectsNonFiniteValues) {
  Checkpoint c = MakeCheckpoint(false);
  c.params[100] = std::numeric_limits<float>::infinity();
  const std::string path = dir_ + "/inf.safetensors";
  ASSERT_TRUE(SaveCheckpoint(path, c).ok());
  auto got = LoadCheckpoint(path);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("element"), std::string::npos) << got.status().message();
  EXPECT_NE(got.status().message().find("is not finite"), std::string::npos);
}

TEST_F(CheckpointTest, SaveRejectsInconsistentCheckpoint) {
  Checkpoint c = MakeCheckpoint(true);
  c.adam_v.pop_back();
  Status s = SaveCheckpoint(dir_ + "/x.safetensors", c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  c = MakeCheckpoint(false);
  c.params.push_back(0.0f);
  s = SaveCheckpoint(dir_ + "/x.safetensors", c);
  EXPECT_NE(s.message().find("needs " + std::to_string(ParameterCount(TinyConfig()))), std::string::npos)
      << s.message();
  c = MakeCheckpoint(false);
  c.tokenizer = "garbage";
  EXPECT_NE(SaveCheckpoint(dir_ + "/x.safetensors", c).message().find("tokenizer: "), std::string::npos);
  c = MakeCheckpoint(false);
  c.config.vocab_size += 1;
  c.params.resize(static_cast<size_t>(ParameterCount(c.config)));
  EXPECT_NE(SaveCheckpoint(dir_ + "/x.safetensors", c).message().find("config vocab_size"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x.safetensors"));
}

TEST_F(CheckpointTest, CrashBetweenWriteAndRenameLeavesPreviousCheckpoint) {
  // A process dies after writing the next checkpoint's temporary file, before the rename.
  Checkpoint next = MakeCheckpoint(true);
  next.step = 124;
  next.params[0] = 42.0f;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string partial = bytes_.substr(0, bytes_.size() / 2);
    (void)WriteFileAtomically(good_, {partial}, [](const std::string&) { _exit(9); });
    _exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 9);
  ASSERT_TRUE(std::filesystem::exists(TempPathFor(good_)));
  auto got = LoadCheckpoint(good_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->step, 123);
  EXPECT_TRUE(SameBits(got->params, MakeCheckpoint(true).params));
  // The stale temporary file does not disturb the next save.
  ASSERT_TRUE(SaveCheckpoint(good_, next).ok());
  got = LoadCheckpoint(good_);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->step, 124);
  EXPECT_EQ(got->params[0], 42.0f);
  EXPECT_FALSE(std::filesystem::exists(TempPathFor(good_)));
}

}  // namespace
}  // namespace lanlm::engine
