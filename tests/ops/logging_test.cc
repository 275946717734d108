// ops logging flags: the JSON-lines formatter (stable keys, escaping, one line per message)
// and the errors --log-format and --log-level give for bad values.
#include "ops/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/spdlog.h>

namespace lanlm::ops {
namespace {

std::string Format(spdlog::level::level_enum level, const std::string& text) {
  auto formatter = MakeJsonFormatter("coordinator");
  spdlog::details::log_msg msg(spdlog::source_loc{}, "coordinator", level, text);
  spdlog::memory_buf_t out;
  formatter->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(LoggingTest, JsonLineHasStableKeysInOrder) {
  const std::string line = Format(spdlog::level::warn, "step 3: lease 7 passed its deadline");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // exactly one line
  const size_t time = line.find("{\"time\":\"20"), level = line.find(",\"level\":\"warning\""),
               program = line.find(",\"program\":\"coordinator\""), pid = line.find(",\"pid\":"),
               thread = line.find(",\"thread\":"),
               message = line.find(",\"message\":\"step 3: lease 7 passed its deadline\"}");
  EXPECT_EQ(time, 0u) << line;
  EXPECT_LT(time, level);
  EXPECT_LT(level, program);
  EXPECT_LT(program, pid);
  EXPECT_LT(pid, thread);
  EXPECT_LT(thread, message);
  EXPECT_NE(message, std::string::npos) << line;
  // RFC 3339 UTC with milliseconds: 2026-11-29T06:01:02.345Z
  EXPECT_EQ(line.substr(13, 1), "-");
  EXPECT_EQ(line.substr(19, 1), "T");
  EXPECT_EQ(line.substr(32, 2), "Z\"");
}

TEST(LoggingTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string line = Format(spdlog::level::info, "a \"quoted\" C:\\path\nnext\tline\x01 é");
  EXPECT_NE(line.find("\"message\":\"a \\\"quoted\\\" C:\\\\path\\nnext\\tline\\u0001 é\"}"), std::string::npos)
      << line;
}

TEST(LoggingTest, BadFlagValuesNameTheFlagAndTheChoices) {
  LogOptions options;
  EXPECT_TRUE(options.Validate().ok());
  options.format = "xml";
  Status bad = options.Validate();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "--log-format xml is not one of: text, json");
  options.format = "json";
  options.level = "verbose";
  bad = options.Validate();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("--log-level verbose is not one of: trace, debug"), std::string::npos);
  options.level = "off";
  EXPECT_TRUE(options.Validate().ok());
  options.level = "debug";
  EXPECT_TRUE(options.Validate().ok());
}

TEST(LoggingTest, ConfigureLoggingSetsTheLevel) {
  LogOptions options;
  options.format = "json";
  options.level = "error";
  ASSERT_TRUE(ConfigureLogging("logging-test", "%v", options).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::err);
  options.format = "text";
  options.level = "debug";
  ASSERT_TRUE(ConfigureLogging("logging-test", "%v", options).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
}

}  // namespace
}  // namespace lanlm::ops
