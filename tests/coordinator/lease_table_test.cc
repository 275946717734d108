// Tests of LeaseTable: work-pull issue order, re-issue after expiry or disconnect, and
// exactly-once completion per (step, shard) with the documented codes.
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

}  // namespace
}  // namespace lanlm::coordinator
