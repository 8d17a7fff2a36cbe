// Tests that S3Server gives a real, private s3rver that goes away with it.
#include "harness/s3_server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "harness/subprocess.h"
#include "harness/temp_dir.h"

namespace sluice::testing {
namespace {

std::unique_ptr<S3Server> StartOrFail() {
  auto server = S3Server::Start();
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST(S3Server, StoresAndReturnsObjects) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->running());
  EXPECT_EQ(server->endpoint(), "http://127.0.0.1:" + std::to_string(server->port()));

  ASSERT_TRUE(server->CreateBucket("harness-bucket").ok());
  std::string bytes("binary\0data \xff", 13);
  ASSERT_TRUE(server->PutObject("harness-bucket", "dir/a key+plus.bin", bytes).ok());
  auto got = server->GetObject("harness-bucket", "dir/a key+plus.bin");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, bytes);
}

TEST(S3Server, PutFileStreamsAFile) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  std::string contents(3 << 20, 'x');
  for (size_t i = 0; i < contents.size(); i += 4096) contents[i] = static_cast<char>('a' + (i / 4096) % 26);
  std::string path = dir.Write("big.bin", contents);
  ASSERT_TRUE(server->CreateBucket("files").ok());
  Status put = server->PutFile("files", "big.bin", path);
  ASSERT_TRUE(put.ok()) << put.ToString();
  auto got = server->GetObject("files", "big.bin");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), contents.size());
  EXPECT_TRUE(*got == contents);
}

TEST(S3Server, MissingObjectIsNotFound) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->CreateBucket("b-missing").ok());
  auto got = server->GetObject("b-missing", "nope");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_NE(got.status().message().find("NoSuchKey"), std::string::npos) << got.status().message();
}

TEST(S3Server, TwoServersAreIndependent) {
  auto a = StartOrFail();
  auto b = StartOrFail();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->port(), b->port());
  ASSERT_TRUE(a->CreateBucket("only-in-a").ok());
  ASSERT_TRUE(a->PutObject("only-in-a", "k", "v").ok());
  EXPECT_FALSE(b->GetObject("only-in-a", "k").ok());
}

TEST(S3Server, StopRefusesConnectionsAndDestructorRemovesData) {
  std::string data_dir;
  {
    auto server = StartOrFail();
    ASSERT_NE(server, nullptr);
    data_dir = server->data_dir();
    ASSERT_TRUE(server->CreateBucket("gone").ok());
    EXPECT_TRUE(std::filesystem::exists(data_dir));
    ASSERT_TRUE(server->Stop().ok());
    EXPECT_FALSE(server->running());
    auto after = server->GetObject("gone", "k");
    ASSERT_FALSE(after.ok());
    EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status().ToString();
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir));
}

// Not a test on its own: WatchdogKillsServerWhenTestProcessDies runs this
// binary with SLUICE_S3_WATCHDOG_HELPER=1 to start a server in a process it
// then SIGKILLs.
TEST(S3Server, WatchdogHelper) {
  if (std::getenv("SLUICE_S3_WATCHDOG_HELPER") == nullptr) GTEST_SKIP() << "helper for another test";
  auto server = S3Server::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::ifstream pid_file(server.value()->data_dir() + "/../s3rver.pid");
  std::string pid;
  std::getline(pid_file, pid);
  std::cout << "DATA_DIR=" << server.value()->data_dir() << "\nPID=" << pid << "\nREADY" << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(120));
}

// The watchdog cleans up after a test process that dies without running
// destructors (a crash, SIGKILL from a ctest timeout).
TEST(S3Server, WatchdogKillsServerWhenTestProcessDies) {
  SubprocessOptions options;
  options.env = {{"SLUICE_S3_WATCHDOG_HELPER", "1"}};
  options.timeout_ms = 180000;
  auto helper = Subprocess::Start({"/proc/self/exe", "--gtest_filter=S3Server.WatchdogHelper"}, options);
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  ASSERT_TRUE((*helper)->WaitForOutput("READY", 60000))
      << (*helper)->StdoutSoFar() << (*helper)->StderrSoFar();
  std::string out = (*helper)->StdoutSoFar();
  (*helper)->Kill(SIGKILL);
  (*helper)->Wait();

  auto value_of = [&](const std::string& name) {
    size_t at = out.find(name + "=");
    if (at == std::string::npos) return std::string();
    at += name.size() + 1;
    return out.substr(at, out.find('\n', at) - at);
  };
  std::string data_dir = value_of("DATA_DIR");
  std::string pid_text = value_of("PID");
  ASSERT_FALSE(data_dir.empty()) << out;
  ASSERT_FALSE(pid_text.empty()) << out;
  pid_t server_pid = static_cast<pid_t>(std::stol(pid_text));
  EXPECT_TRUE(Eventually([&] { return !ProcessAlive(server_pid); })) << "s3rver pid " << server_pid;
  EXPECT_TRUE(Eventually([&] { return !std::filesystem::exists(data_dir); })) << data_dir;
}

}  // namespace
}  // namespace sluice::testing
