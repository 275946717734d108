// Tests that every kind of damaged or foreign checkpoint file is rejected with a message
// naming what is wrong: truncation, flipped bits, bad shapes, dtypes, configs, offsets, and a
// swapped tensor table (DESIGN.md §5, §8.3-4).
#include "engine/io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/io/json.h"
#include "tests/engine/checkpoint_fixture.h"

namespace lanlm::engine::checkpoint_testing {
namespace {

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

}  // namespace
}  // namespace lanlm::engine::checkpoint_testing
