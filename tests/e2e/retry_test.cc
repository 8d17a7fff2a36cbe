// Retries of whole loads after retryable failures, against a PostgreSQL
// server of the test's own that it stops and starts.
#include <gtest/gtest.h>

#include <thread>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

using sluice::testing::CliProcess;
using sluice::testing::PgServer;
using sluice::testing::TempDir;

class RetryingLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PgServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    pg_ = std::move(server).value();
    ASSERT_TRUE(pg_->CreateDatabase("app").ok());
    csv_ = dir_.Path("rows.csv");
    WriteSimpleCsv(csv_, 1, 50'000);
  }
  std::string Toml(const std::string& retry) {
    return SimpleCsvSource(csv_) + PgDestination(pg_->Url("app"), "items") + retry;
  }

  TempDir dir_;
  std::unique_ptr<PgServer> pg_;
  std::string csv_;
};

TEST_F(RetryingLoad, ServerDownAtStartIsRetriedUntilItComesBackAndLoadsOnce) {
  ASSERT_TRUE(pg_->Stop().ok());
  std::string file = dir_.Write("p.toml", Toml("[retry]\nmax_attempts = 6\ninitial = \"1s\"\nmax_delay = \"2s\"\n"));
  auto proc = CliProcess::Start({"run", file});
  ASSERT_TRUE(proc.ok());
  ASSERT_TRUE((*proc)->WaitForOutput("retrying in", 30'000)) << (*proc)->StderrSoFar();
  ASSERT_TRUE(pg_->StartAgain().ok());
  auto r = (*proc)->Wait();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(*pg_->QueryScalar("app", "SELECT count(*) FROM items"), "50000");
  EXPECT_EQ(*pg_->QueryScalar("app", "SELECT count(DISTINCT id) FROM items"), "50000");
}

TEST_F(RetryingLoad, GivesUpAfterMaxAttemptsWithTheCause) {
  ASSERT_TRUE(pg_->Stop().ok());
  std::string file = dir_.Write("p.toml", Toml("[retry]\nmax_attempts = 2\ninitial = \"1s\"\n"));
  auto r = Sluice({"run", file});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("retrying in"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("cannot connect to PostgreSQL"), std::string::npos) << Describe(r);
}

TEST_F(RetryingLoad, DataErrorsAreNotRetried) {
  std::string bad = dir_.Write("bad.csv", "id,name,amount\n1,a,1.00\n2,b,notanumber\n");
  std::string file = dir_.Write("p.toml", SimpleCsvSource(bad) + PgDestination(pg_->Url("app"), "items") +
                                              "[retry]\nmax_attempts = 5\n");
  auto r = Sluice({"run", file});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.err.find("retrying"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << Describe(r);
}

}  // namespace
}  // namespace sluice::e2e
