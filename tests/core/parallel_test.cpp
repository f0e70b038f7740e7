// ParallelPool: every part runs exactly once, on more than one thread, run after run,
// and two callers at once both get all their parts done.
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace r1kit {
namespace {

TEST(ParallelPoolTest, EveryPartRunsOnceAndWorkersAreUsed) {
  ParallelPool pool;
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::vector<std::atomic<int>> hits(3);
  pool.run(3, [&](int p) {
    hits[p].fetch_add(1);
    // Long enough that the caller cannot take every part before a worker wakes.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_EQ(pool.workers(), 2);
  EXPECT_GE(ids.size(), 2u);
}

TEST(ParallelPoolTest, ManyShortRunsInARowLoseNoPart) {
  ParallelPool pool;
  std::atomic<int64_t> sum{0};
  int64_t want = 0;
  for (int run = 0; run < 2000; ++run) {
    const int parts = 1 + run % 5;
    pool.run(parts, [&, run](int p) { sum.fetch_add(run * 10 + p); });
    for (int p = 0; p < parts; ++p) want += run * 10 + p;
  }
  EXPECT_EQ(sum.load(), want);
  EXPECT_EQ(pool.workers(), 4);
}

TEST(ParallelPoolTest, ConcurrentCallersEachGetAllTheirParts) {
  ParallelPool pool;
  std::atomic<int64_t> a{0}, b{0};
  auto caller = [&](std::atomic<int64_t>& out) {
    for (int run = 0; run < 500; ++run) pool.run(4, [&](int p) { out.fetch_add(p + 1); });
  };
  std::thread t1(caller, std::ref(a)), t2(caller, std::ref(b));
  t1.join();
  t2.join();
  EXPECT_EQ(a.load(), 500 * 10);
  EXPECT_EQ(b.load(), 500 * 10);
}

TEST(ParallelPoolTest, OnePartOrNoneRunsOnTheCaller) {
  ParallelPool pool;
  std::thread::id where;
  pool.run(1, [&](int) { where = std::this_thread::get_id(); });
  EXPECT_EQ(where, std::this_thread::get_id());
  pool.run(0, [&](int) { FAIL() << "no part to run"; });
  EXPECT_EQ(pool.workers(), 0);
}

TEST(LendCoresTest, CountsWhatIsLentWhileItIsLent) {
  const int before = LendCores::lent();
  {
    LendCores a(1);
    EXPECT_EQ(LendCores::lent(), before + 1);
    {
      LendCores b(2);
      EXPECT_EQ(LendCores::lent(), before + 3);
    }
    EXPECT_EQ(LendCores::lent(), before + 1);
    LendCores none(-4);  // nothing, not a debt
    EXPECT_EQ(LendCores::lent(), before + 1);
  }
  EXPECT_EQ(LendCores::lent(), before);
  // From another thread too: one count for the process.
  std::thread t([] { LendCores c(1); });
  t.join();
  EXPECT_EQ(LendCores::lent(), before);
}

}  // namespace
}  // namespace r1kit
