// The run history file (engine/cli/run_history.h) that lanlm-coordinator and `lanlm train
// --history` both write: rows round-trip, a restart keeps the rows up to the resumed step and
// drops malformed lines, and an unwritable file is an error naming it.
#include "engine/cli/run_history.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.h"

namespace lanlm::engine {
namespace {

StepRecord Row(int64_t step) {
  StepRecord r;
  r.step = step;
  r.tokens = step * 100;
  r.loss = 5.0f - 0.25f * static_cast<float>(step);
  r.validation_loss = step % 2 == 0 ? 4.5f : 0.0f;
  r.step_s = 0.125;
  r.workers = 2;
  r.unix_ms = 1795932792250 + step;
  return r;
}

TEST(RunHistoryTest, RestartKeepsRowsUpToTheResumedStepAndSkipsMalformedLines) {
  const test_support::ScratchDir dir;
  const std::string path = dir / "history.jsonl";
  for (int64_t step = 1; step <= 5; ++step) ASSERT_TRUE(AppendHistory(path, Row(step)).ok());
  std::ofstream(path, std::ios::app) << "{\"step\":6,\"tok\n";  // torn by a crash
  int64_t malformed = 0;
  auto kept = RestartHistory(path, 3, &malformed);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(malformed, 1);
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_EQ((*kept)[2].step, 3);
  EXPECT_EQ((*kept)[1].validation_loss, 4.5f);
  EXPECT_EQ((*kept)[2].unix_ms, 1795932792253);
  // The file itself now holds exactly those rows, in the writer's format.
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), StepRecordJson(Row(1)) + "\n" + StepRecordJson(Row(2)) + "\n" + StepRecordJson(Row(3)) + "\n");
  // A fresh run (step 0) starts an empty history; a missing file is an empty history.
  EXPECT_TRUE(RestartHistory(path, 0)->empty());
  EXPECT_TRUE(RestartHistory(dir / "new.jsonl", 7)->empty());
}

TEST(RunHistoryTest, UnwritableFileIsAnErrorNamingIt) {
  const std::string path = "/nonexistent-lanlm-dir/history.jsonl";
  const Status appended = AppendHistory(path, Row(1));
  EXPECT_EQ(appended.code(), StatusCode::kUnavailable);
  EXPECT_NE(appended.message().find(path), std::string::npos) << appended.message();
  EXPECT_EQ(RestartHistory(path, 0).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lanlm::engine
