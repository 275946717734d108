// Tests of LeaseTable: work-pull issue order, re-issue after expiry or disconnect,
// exactly-once completion per (step, shard) with the documented codes, and shard blocks.
#include "coordinator/lease_table.h"

#include <gtest/gtest.h>

namespace lanlm::coordinator {
namespace {

TEST(LeaseTableTest, IssuesEveryShardOnceThenCompletes) {
  LeaseTable table;
  table.StartStep(0, 3);
  std::vector<LeaseInfo> leases;
  while (table.HasPending()) leases.push_back(table.Issue(/*connection=*/static_cast<int64_t>(leases.size()) + 1));
  ASSERT_EQ(leases.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(leases[i].shard, i);
    EXPECT_EQ(leases[i].step, 0);
  }
  EXPECT_FALSE(table.StepComplete());
  for (const LeaseInfo& lease : leases) ASSERT_TRUE(table.Complete(lease.lease_id, lease.connection).ok());
  EXPECT_TRUE(table.StepComplete());
  EXPECT_EQ(table.done_count(), 3);
}

TEST(LeaseTableTest, DuplicateAndLateCommitsAreAborted) {
  LeaseTable table;
  table.StartStep(0, 2);
  const LeaseInfo a = table.Issue(1);
  ASSERT_TRUE(table.Complete(a.lease_id, 1).ok());
  EXPECT_EQ(table.Complete(a.lease_id, 1).status().code(), StatusCode::kAborted);  // duplicate

  const LeaseInfo b = table.Issue(1);
  EXPECT_TRUE(table.Release(b.lease_id, /*expired=*/true));
  EXPECT_EQ(table.Complete(b.lease_id, 1).status().code(), StatusCode::kAborted);  // late
  ASSERT_TRUE(table.HasPending());
  const LeaseInfo c = table.Issue(2);  // re-issued to another worker
  EXPECT_EQ(c.shard, b.shard);
  EXPECT_NE(c.lease_id, b.lease_id);
  ASSERT_TRUE(table.Complete(c.lease_id, 2).ok());
  EXPECT_TRUE(table.StepComplete());
  EXPECT_EQ(table.done_count(), 2);

  table.StartStep(1, 2);
  EXPECT_EQ(table.Complete(c.lease_id, 2).status().code(), StatusCode::kAborted);  // previous step
}

TEST(LeaseTableTest, UnknownOrForeignLeasesAreNotFound) {
  LeaseTable table;
  table.StartStep(0, 2);
  EXPECT_EQ(table.CheckActive(1, 1).code(), StatusCode::kNotFound);  // never issued
  EXPECT_EQ(table.CheckActive(0, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(table.CheckActive(-5, 1).code(), StatusCode::kNotFound);
  const LeaseInfo a = table.Issue(1);
  EXPECT_EQ(table.CheckActive(a.lease_id, 2).code(), StatusCode::kNotFound);  // someone else's
  EXPECT_EQ(table.Complete(a.lease_id + 100, 1).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(table.CheckActive(a.lease_id, 1).ok());
}

TEST(LeaseTableTest, DisconnectReturnsOnlyThatConnectionsShards) {
  LeaseTable table;
  table.StartStep(4, 4);
  const LeaseInfo a = table.Issue(1), b = table.Issue(2), c = table.Issue(1);
  EXPECT_FALSE(table.HasPending() && table.active_count() != 3);
  const auto released = table.ReleaseConnection(1);
  ASSERT_EQ(released.size(), 2u);
  EXPECT_EQ(table.active_count(), 1);
  EXPECT_TRUE(table.CheckActive(b.lease_id, 2).ok());
  EXPECT_EQ(table.CheckActive(a.lease_id, 1).code(), StatusCode::kAborted);
  // Pending shards come back lowest first: a's and c's shards, then the untouched one.
  EXPECT_EQ(table.Issue(3).shard, a.shard);
  EXPECT_EQ(table.Issue(3).shard, c.shard);
  EXPECT_EQ(table.Issue(3).shard, 3);
  EXPECT_FALSE(table.HasPending());
}

TEST(LeaseTableTest, ReleaseOfInactiveLeaseIsANoOp) {
  LeaseTable table;
  table.StartStep(0, 1);
  const LeaseInfo a = table.Issue(1);
  ASSERT_TRUE(table.Complete(a.lease_id, 1).ok());
  EXPECT_FALSE(table.Release(a.lease_id, true));
  EXPECT_FALSE(table.HasPending());
  EXPECT_TRUE(table.StepComplete());
}

// Blocks of shards_per_lease aligned shards, the last one clipped; completed, released and
// re-issued whole.
TEST(LeaseTableTest, BlocksOfShardsAreLeasedWhole) {
  LeaseTable table;
  table.StartStep(0, 7, 4);  // blocks [0, 4) and [4, 7)
  const LeaseInfo a = table.Issue(1);
  const LeaseInfo b = table.Issue(2);
  EXPECT_FALSE(table.HasPending());
  EXPECT_EQ(a.shard, 0);
  EXPECT_EQ(a.count, 4);
  EXPECT_EQ(a.block, 4);
  EXPECT_EQ(b.shard, 4);
  EXPECT_EQ(b.count, 3);  // clipped at the step's 7 shards
  EXPECT_EQ(b.block, 4);
  ASSERT_NE(table.Find(b.lease_id), nullptr);
  EXPECT_EQ(table.Find(b.lease_id)->count, 3);

  EXPECT_TRUE(table.Release(a.lease_id, /*expired=*/true));
  EXPECT_EQ(table.Find(a.lease_id), nullptr);
  const LeaseInfo again = table.Issue(3);  // the whole block comes back
  EXPECT_EQ(again.shard, 0);
  EXPECT_EQ(again.count, 4);
  ASSERT_TRUE(table.Complete(b.lease_id, 2).ok());
  EXPECT_EQ(table.done_count(), 3);
  EXPECT_FALSE(table.StepComplete());
  ASSERT_TRUE(table.Complete(again.lease_id, 3).ok());
  EXPECT_EQ(table.done_count(), 7);
  EXPECT_TRUE(table.StepComplete());
  EXPECT_EQ(table.Complete(a.lease_id, 1).status().code(), StatusCode::kAborted);  // the expired one

  table.StartStep(1, 3, 8);  // one block larger than the step: clipped to all 3 shards
  const LeaseInfo all = table.Issue(1);
  EXPECT_EQ(all.shard, 0);
  EXPECT_EQ(all.count, 3);
  EXPECT_FALSE(table.HasPending());
}

}  // namespace
}  // namespace lanlm::coordinator
