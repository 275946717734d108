// Tests of WriteFileAtomically: contents, replacement, and a process killed between write and
// rename leaving the previous file intact.
#include "engine/io/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/temp_dir.h"

namespace lanlm::engine {
namespace {

using test_support::ScratchDir;
using test_support::Slurp;

TEST(AtomicFileTest, WritesConcatenationAndReplaces) {
  ScratchDir dir;
  const std::string path = dir / "f.bin";
  ASSERT_TRUE(WriteFileAtomically(path, {"ab", std::string_view("c\0d", 3), ""}).ok());
  EXPECT_EQ(Slurp(path), std::string("abc\0d", 5));
  ASSERT_TRUE(WriteFileAtomically(path, {"new"}).ok());
  EXPECT_EQ(Slurp(path), "new");
  EXPECT_FALSE(std::filesystem::exists(TempPathFor(path)));
}

TEST(AtomicFileTest, MissingFolderFailsCleanly) {
  ScratchDir dir;
  const std::string path = dir / "no/such/dir/f.bin";
  Status s = WriteFileAtomically(path, {"x"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(TempPathFor(path)), std::string::npos) << s.message();
}

TEST(AtomicFileTest, CrashBeforeRenameKeepsOldFile) {
  ScratchDir dir;
  const std::string path = dir / "f.bin";
  ASSERT_TRUE(WriteFileAtomically(path, {"old contents"}).ok());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child dies at the worst moment: new data fully written, rename not yet done.
    (void)WriteFileAtomically(path, {"new contents that never land"}, [](const std::string&) { _exit(7); });
    _exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 7) << "the hook did not run";
  EXPECT_EQ(Slurp(path), "old contents");
  EXPECT_EQ(Slurp(TempPathFor(path)), "new contents that never land");  // the stale temp file
  // The next write overwrites the stale temp file and succeeds.
  ASSERT_TRUE(WriteFileAtomically(path, {"next"}).ok());
  EXPECT_EQ(Slurp(path), "next");
  EXPECT_FALSE(std::filesystem::exists(TempPathFor(path)));
}

}  // namespace
}  // namespace lanlm::engine
