// Tests of protos/cluster_auth: token files and flag resolution.
#include "protos/cluster_auth.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace lanlm::protos {
namespace {

std::string WriteTemp(const std::string& contents) {
  std::string path = ::testing::TempDir() + "/token_" + std::to_string(getpid()) + "_" +
                     std::to_string(reinterpret_cast<uintptr_t>(&contents) & 0xffff);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(ClusterAuthTest, TokenFileIsTrimmed) {
  const std::string path = WriteTemp("  s3cret-Token_1\n\n");
  auto token = ReadClusterTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(*token, "s3cret-Token_1");
}

TEST(ClusterAuthTest, BadTokensAreRejected) {
  EXPECT_EQ(ReadClusterTokenFile(WriteTemp(" \n")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadClusterTokenFile(WriteTemp("two words")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadClusterTokenFile("/nonexistent/token").status().code(), StatusCode::kNotFound);
}

TEST(ClusterAuthTest, ExactlyOneSourceAndNoDefault) {
  EXPECT_EQ(ResolveClusterToken("", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveClusterToken("abc", WriteTemp("abc")).status().code(), StatusCode::kInvalidArgument);
  auto token = ResolveClusterToken("abc", "");
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, "abc");
}

}  // namespace
}  // namespace lanlm::protos
