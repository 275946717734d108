// Tests of protos/convert: status codes, config round trip, chunking and reassembly with
// CRC32C checks (against the engine's Crc32c as the independent reference), lease tokens.
#include "protos/convert.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include <gtest/gtest.h>

#include "engine/base/hash.h"

namespace lanlm::protos {
namespace {

std::vector<float> Ramp(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.001f * static_cast<float>(i * 7919 % 1009) - 0.3f;
  return v;
}

TEST(ConvertTest, StatusCodesRoundTrip) {
  for (int code = 1; code <= 16; ++code) {
    const Status status(static_cast<StatusCode>(code), "why " + std::to_string(code));
    const grpc::Status g = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), status.message());
    const Status back = FromGrpcStatus(g);
    EXPECT_EQ(back.code(), status.code());
    EXPECT_EQ(back.message(), status.message());
  }
  EXPECT_TRUE(ToGrpcStatus(OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(ConvertTest, ModelConfigRoundTripAndValidation) {
  engine::ModelConfig config;
  config.vocab_size = 4096;
  config.dim = 288;
  config.n_layers = 6;
  config.n_heads = 6;
  config.ffn_hidden = 768;
  config.context = 256;
  v1::ModelConfig message;
  ToProto(config, &message);
  EXPECT_EQ(message.dim(), 288);
  auto back = FromProto(message);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, config);
  EXPECT_EQ(back->Hash(), config.Hash());

  message.set_n_heads(7);  // 288 is not divisible by 7
  EXPECT_EQ(FromProto(message).status().code(), StatusCode::kInvalidArgument);
  message.set_n_heads(6);
  message.set_vocab_size(-1);
  EXPECT_EQ(FromProto(message).status().code(), StatusCode::kInvalidArgument);
}

TEST(ConvertTest, ChunksReassembleBitExactly) {
  const std::vector<float> block = Ramp(1001);
  const auto chunks = MakeChunks(block.data(), 1001, 64);  // 16 floats per chunk
  ASSERT_EQ(chunks.size(), 63u);
  int64_t covered = 0;
  for (const auto& chunk : chunks) {
    EXPECT_EQ(chunk.offset(), covered);
    EXPECT_EQ(chunk.total(), 1001);
    EXPECT_LE(chunk.data().size(), 64u);
    EXPECT_EQ(chunk.crc32c(), engine::Crc32c(chunk.data().data(), chunk.data().size()));
    covered += static_cast<int64_t>(chunk.data().size()) / 4;
  }
  EXPECT_EQ(covered, 1001);

  ChunkAssembler assembler(1001, 64);
  for (const auto& chunk : chunks) {
    EXPECT_FALSE(assembler.complete());
    ASSERT_TRUE(assembler.Add(chunk).ok());
  }
  ASSERT_TRUE(assembler.complete());
  EXPECT_EQ(assembler.crc32c(), ChunksCrc32c(chunks));
  std::vector<uint32_t> crcs;
  for (const auto& chunk : chunks) crcs.push_back(engine::Crc32c(chunk.data().data(), chunk.data().size()));
  EXPECT_EQ(assembler.crc32c(), engine::Crc32c(crcs.data(), crcs.size() * 4));
  std::vector<v1::FloatChunk> swapped = chunks;
  std::swap(swapped[3], swapped[4]);
  EXPECT_NE(ChunksCrc32c(swapped), ChunksCrc32c(chunks));
  const std::vector<float> out = assembler.Take();
  ASSERT_EQ(out.size(), block.size());
  EXPECT_EQ(std::memcmp(out.data(), block.data(), block.size() * 4), 0);
}

TEST(ConvertTest, DefaultChunksRespectTheFourMebibyteBoundAndTheMessageLimit) {
  const int64_t n = (kMaxChunkBytes / 4) * 2 + 3;
  std::vector<float> block(static_cast<size_t>(n), 1.5f);
  const auto chunks = MakeChunks(block.data(), n);
  ASSERT_EQ(chunks.size(), 3u);
  v1::CoordinatorMessage message;
  v1::ParamChunk* param = message.mutable_param_chunk();
  param->set_version(int64_t{1} << 40);
  *param->mutable_chunk() = chunks[0];
  EXPECT_EQ(static_cast<int64_t>(chunks[0].data().size()), kMaxChunkBytes);
  EXPECT_LE(static_cast<int64_t>(message.ByteSizeLong()), kMaxMessageBytes);
  EXPECT_EQ(chunks[2].data().size(), 12u);
}

TEST(ConvertTest, CorruptChunkIsDataLossAndSticky) {
  const std::vector<float> block = Ramp(40);
  auto chunks = MakeChunks(block.data(), 40, 64);
  ChunkAssembler assembler(40, 64);
  ASSERT_TRUE(assembler.Add(chunks[0]).ok());
  std::string data = chunks[1].data();
  data[5] ^= 0x10;
  chunks[1].set_data(data);
  EXPECT_EQ(assembler.Add(chunks[1]).code(), StatusCode::kDataLoss);
  EXPECT_EQ(assembler.Add(chunks[2]).code(), StatusCode::kDataLoss);
  EXPECT_FALSE(assembler.complete());
}

TEST(ConvertTest, MalformedChunksAreInvalidArgument) {
  const std::vector<float> block = Ramp(40);
  const auto chunks = MakeChunks(block.data(), 40, 64);
  {
    ChunkAssembler assembler(41, 64);  // wrong total (gradient of the wrong size)
    EXPECT_EQ(assembler.Add(chunks[0]).code(), StatusCode::kInvalidArgument);
  }
  {
    ChunkAssembler assembler(40, 64);  // out of order
    EXPECT_EQ(assembler.Add(chunks[1]).code(), StatusCode::kInvalidArgument);
  }
  {
    ChunkAssembler assembler(40, 32);  // larger than this receiver's bound
    EXPECT_EQ(assembler.Add(chunks[0]).code(), StatusCode::kInvalidArgument);
  }
  {
    ChunkAssembler assembler(40, 64);
    v1::FloatChunk odd = chunks[0];
    odd.set_data(odd.data().substr(0, 6));
    odd.set_crc32c(engine::Crc32c(odd.data().data(), 6));
    EXPECT_EQ(assembler.Add(odd).code(), StatusCode::kInvalidArgument);
  }
  {
    ChunkAssembler assembler(40, 64);
    v1::FloatChunk empty = chunks[0];
    empty.clear_data();
    empty.set_crc32c(0);
    EXPECT_EQ(assembler.Add(empty).code(), StatusCode::kInvalidArgument);
  }
  {
    ChunkAssembler assembler(10, 64);  // a chunk running past the end
    v1::FloatChunk past = chunks[0];
    past.set_total(10);
    EXPECT_EQ(assembler.Add(past).code(), StatusCode::kInvalidArgument);
  }
}

// Protocol 6 gradients: chunks in any order, each range once; an overlap names both ranges,
// a gap is found by FirstMissing; the checksum follows the arrival order.
TEST(ConvertTest, AnyOrderAssemblerTakesEachRangeOnce) {
  const std::vector<float> block = Ramp(40);
  auto chunks = MakeChunks(block.data(), 40, 64);  // 16 floats per chunk: [0,16) [16,32) [32,40)
  ASSERT_EQ(chunks.size(), 3u);
  ChunkAssembler assembler(40, 64, engine::WireFormat::kFp32, engine::ChunkOrder::kAnyOrder);
  ASSERT_TRUE(assembler.Add(chunks[2]).ok());
  ASSERT_TRUE(assembler.Add(chunks[0]).ok());
  EXPECT_FALSE(assembler.complete());
  EXPECT_EQ(assembler.FirstMissing(), 16);
  ASSERT_TRUE(assembler.Add(chunks[1]).ok());
  ASSERT_TRUE(assembler.complete());
  EXPECT_EQ(assembler.block(), block);
  EXPECT_EQ(assembler.crc32c(), ChunksCrc32c({chunks[2], chunks[0], chunks[1]}));
  EXPECT_NE(assembler.crc32c(), ChunksCrc32c(chunks));

  ChunkAssembler twice(40, 64, engine::WireFormat::kFp32, engine::ChunkOrder::kAnyOrder);
  ASSERT_TRUE(twice.Add(chunks[1]).ok());
  const Status duplicate = twice.Add(chunks[1]);
  EXPECT_EQ(duplicate.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(duplicate.message().find("[16, 32) overlaps [16, 32)"), std::string::npos) << duplicate.message();

  // A range straddling two received ones.
  ChunkAssembler straddle(40, 64, engine::WireFormat::kFp32, engine::ChunkOrder::kAnyOrder);
  ASSERT_TRUE(straddle.Add(chunks[0]).ok());
  const auto shifted = MakeChunks(block.data() + 8, 16, 64);
  v1::FloatChunk middle = shifted[0];
  middle.set_offset(8);
  middle.set_total(40);
  const Status overlap = straddle.Add(middle);
  EXPECT_EQ(overlap.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(overlap.message().find("[8, 24) overlaps [0, 16)"), std::string::npos) << overlap.message();
  v1::FloatChunk negative = chunks[0];
  negative.set_offset(-16);
  ChunkAssembler outside(40, 64, engine::WireFormat::kFp32, engine::ChunkOrder::kAnyOrder);
  EXPECT_EQ(outside.Add(negative).code(), StatusCode::kInvalidArgument);
}

using engine::FromBf16;
using engine::ToBf16;

// The naive reference: of the two bf16 values around x (truncation and the next one up in
// magnitude), the nearer in double precision; a tie goes to the even one.
uint16_t NaiveBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint16_t lo = static_cast<uint16_t>(u >> 16), hi = static_cast<uint16_t>(lo + 1);
  const double dlo = std::fabs(static_cast<double>(x) - FromBf16(lo));
  const double dhi = std::fabs(static_cast<double>(x) - FromBf16(hi));
  if (dlo != dhi) return dlo < dhi ? lo : hi;
  return (lo & 1) == 0 ? lo : hi;
}

TEST(ConvertTest, Bf16RoundsToNearestEven) {
  auto bits = [](uint32_t u) { return std::bit_cast<float>(u); };
  EXPECT_EQ(ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(ToBf16(bits(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(ToBf16(bits(0x3f818000u)), 0x3f82);  // tie, even above
  EXPECT_EQ(ToBf16(bits(0x3f808001u)), 0x3f81);  // just past the tie
  EXPECT_EQ(ToBf16(bits(0xbf807fffu)), 0xbf80);  // negative, just below the tie
  EXPECT_EQ(ToBf16(bits(0x7f7fffffu)), 0x7f80);  // the largest float rounds to +inf
  EXPECT_EQ(ToBf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(ToBf16(bits(0x00000001u)), 0x0000);  // the smallest subnormal rounds to zero
  const uint16_t nan = ToBf16(bits(0x7f800001u));  // a NaN whose payload is all in the low half
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0) << "a NaN must not become infinity";
  uint64_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t u = static_cast<uint32_t>(state >> 32);
    if ((u & 0x7f800000u) == 0x7f800000u || (u & 0x7fffffffu) >= 0x7f7f8000u) continue;  // no NaN/Inf/overflow
    ASSERT_EQ(ToBf16(bits(u)), NaiveBf16(bits(u))) << std::hex << u;
    const uint16_t h = static_cast<uint16_t>(u >> 16);
    ASSERT_EQ(std::bit_cast<uint32_t>(FromBf16(h)), uint32_t{h} << 16);  // widening is exact
  }
}

TEST(ConvertTest, Bf16ChunksHalveTheBytesAndReassembleRounded) {
  const std::vector<float> block = Ramp(1001);
  const auto chunks = MakeChunks(block.data(), 1001, 64, engine::WireFormat::kBf16);  // 32 floats per chunk
  ASSERT_EQ(chunks.size(), 32u);
  int64_t bytes = 0;
  for (const auto& chunk : chunks) {
    EXPECT_EQ(chunk.format(), v1::WIRE_FORMAT_BF16);
    EXPECT_EQ(chunk.crc32c(), engine::Crc32c(chunk.data().data(), chunk.data().size()));
    bytes += static_cast<int64_t>(chunk.data().size());
  }
  EXPECT_EQ(bytes, 1001 * 2);
  ChunkAssembler assembler(1001, 64, engine::WireFormat::kBf16);
  for (const auto& chunk : chunks) ASSERT_TRUE(assembler.Add(chunk).ok());
  ASSERT_TRUE(assembler.complete());
  EXPECT_EQ(assembler.crc32c(), ChunksCrc32c(chunks));
  const std::vector<float> out = assembler.Take();
  for (size_t i = 0; i < block.size(); ++i) ASSERT_EQ(out[i], FromBf16(ToBf16(block[i]))) << i;

  // The largest bf16 chunk still carries at most max_chunk_bytes.
  const int64_t n = kMaxChunkBytes / 2 + 1;
  std::vector<float> big(static_cast<size_t>(n), 0.5f);
  const auto two = MakeChunks(big.data(), n, kMaxChunkBytes, engine::WireFormat::kBf16);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(static_cast<int64_t>(two[0].data().size()), kMaxChunkBytes);
}

TEST(ConvertTest, ChunkOfAnotherWireFormatIsRefusedNamingBoth) {
  const std::vector<float> block = Ramp(40);
  const auto half = MakeChunks(block.data(), 40, 64, engine::WireFormat::kBf16);
  ChunkAssembler fp32(40, 64);
  const Status mixed = fp32.Add(half[0]);
  EXPECT_EQ(mixed.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.message().find("bf16"), std::string::npos) << mixed.ToString();
  EXPECT_NE(mixed.message().find("fp32"), std::string::npos) << mixed.ToString();
  ChunkAssembler bf16(40, 64, engine::WireFormat::kBf16);
  EXPECT_EQ(bf16.Add(MakeChunks(block.data(), 40, 64)[0]).code(), StatusCode::kInvalidArgument);
  ChunkAssembler odd(40, 64, engine::WireFormat::kBf16);
  v1::FloatChunk three = half[0];
  three.set_data(three.data().substr(0, 3));  // not a whole number of bf16 values
  three.set_crc32c(engine::Crc32c(three.data().data(), 3));
  EXPECT_EQ(odd.Add(three).code(), StatusCode::kInvalidArgument);
  v1::FloatChunk unknown = half[0];
  unknown.set_format(static_cast<v1::WireFormat>(7));
  ChunkAssembler other(40, 64, engine::WireFormat::kBf16);
  const Status seven = other.Add(unknown);
  EXPECT_NE(seven.message().find("wire format 7"), std::string::npos) << seven.ToString();

  EXPECT_EQ(*engine::ParseWireFormat("fp32"), engine::WireFormat::kFp32);
  EXPECT_EQ(*engine::ParseWireFormat("bf16"), engine::WireFormat::kBf16);
  const auto fp16 = engine::ParseWireFormat("fp16");
  EXPECT_EQ(fp16.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fp16.status().message().find("'fp16'"), std::string::npos) << fp16.status().ToString();
}

TEST(ConvertTest, LeaseTokensAreValidated) {
  engine::ModelConfig config;
  config.vocab_size = 50;
  config.context = 3;
  std::vector<int32_t> tokens(8);
  std::iota(tokens.begin(), tokens.end(), 40);  // 40..47
  v1::Lease lease;
  lease.set_micro_batch(2);
  TokensToProto(tokens.data(), 8, &lease);
  auto back = TokensFromProto(lease, config, 2);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, tokens);
  EXPECT_EQ(TokensFromProto(lease, config, 3).status().code(), StatusCode::kInvalidArgument);
  lease.set_tokens(3, 50);
  EXPECT_EQ(TokensFromProto(lease, config, 2).status().code(), StatusCode::kInvalidArgument);
  lease.set_tokens(3, -1);
  EXPECT_EQ(TokensFromProto(lease, config, 2).status().code(), StatusCode::kInvalidArgument);
  lease.set_tokens(3, 3);
  lease.add_tokens(1);
  EXPECT_EQ(TokensFromProto(lease, config, 2).status().code(), StatusCode::kInvalidArgument);
}

TEST(ConvertTest, MultiShardLeaseTokens) {
  engine::ModelConfig config;
  config.vocab_size = 10;
  config.context = 3;
  std::vector<int32_t> tokens(2 * 2 * 4);  // 2 shards of B = 2 rows of T + 1 = 4
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i % 10);
  v1::Lease lease;
  lease.set_micro_batch(2);
  lease.set_shard_count(2);
  TokensToProto(tokens.data(), static_cast<int64_t>(tokens.size()), &lease);
  auto back = TokensFromProto(lease, config, 2);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, tokens);
  EXPECT_EQ(*LeaseShardCount(lease), 2);
  lease.set_shard_count(0);  // 0 means one shard: now the token count is wrong
  EXPECT_EQ(*LeaseShardCount(lease), 1);
  EXPECT_EQ(TokensFromProto(lease, config, 2).status().code(), StatusCode::kInvalidArgument);
  for (int bad : {-1, 65, 128}) {
    lease.set_shard_count(bad);
    const auto count = LeaseShardCount(lease);
    EXPECT_EQ(count.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(count.status().message().find(std::to_string(bad)), std::string::npos) << count.status().ToString();
  }
}

}  // namespace
}  // namespace lanlm::protos
