// S3Client against a real s3rver from the test harness, and against the
// harness's FaultProxy in front of it for the failures a real S3 shows.
#include "io/s3/s3_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness/fault_proxy.h"
#include "harness/s3_server.h"
#include "harness/temp_dir.h"

namespace sluice::io {
namespace {

using sluice::testing::FaultKind;
using sluice::testing::FaultProxy;
using sluice::testing::FaultProxyOptions;
using sluice::testing::S3Server;
using sluice::testing::TempDir;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Files in dir other than the ones named: a download must leave no
// temporary file behind.
std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

RetryPolicy FastRetry(int max_attempts = 4) {
  RetryPolicy p;
  p.initial = milliseconds(20);
  p.max_delay = milliseconds(200);
  p.max_elapsed = milliseconds(20000);
  p.max_attempts = max_attempts;
  return p;
}

class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = S3Server::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(server_, nullptr) << "s3rver did not start"; }

  static S3Options Options(const std::string& endpoint) {
    S3Options o;
    o.endpoint = endpoint;
    o.region = "us-east-1";
    o.access_key_id = S3Server::kAccessKeyId;
    o.secret_access_key = S3Server::kSecretAccessKey;
    o.retry = FastRetry();
    return o;
  }

  static std::unique_ptr<S3Client> MakeClient(S3Options options) {
    auto client = S3Client::Make(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  std::unique_ptr<S3Client> Client() { return MakeClient(Options(server_->endpoint())); }

  // A fresh bucket per test, made through the client under test.
  std::string Bucket(S3Client* client) {
    std::string name = "t-" + std::to_string(++bucket_counter_);
    Status s = client->CreateBucket(name);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return name;
  }

  std::unique_ptr<FaultProxy> Proxy(FaultProxyOptions options) {
    options.upstream_port = server_->port();
    auto proxy = FaultProxy::Start(options);
    EXPECT_TRUE(proxy.ok()) << proxy.status().ToString();
    return proxy.ok() ? std::move(proxy).value() : nullptr;
  }

  static S3Server* server_;
  static std::atomic<int> bucket_counter_;
};

S3Server* S3ClientTest::server_ = nullptr;
std::atomic<int> S3ClientTest::bucket_counter_{0};

TEST_F(S3ClientTest, PutThenHeadAndRangeGet) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string body = RandomBytes(100000, 1);
  int64_t before_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_TRUE(client->PutObject(bucket, "dir/object.bin", body).ok());

  auto head = client->Head(bucket, "dir/object.bin");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->key, "dir/object.bin");
  EXPECT_EQ(head->size, 100000);
  EXPECT_EQ(head->etag, Md5Hex(body));  // s3rver: the MD5, quotes removed
  EXPECT_NEAR(static_cast<double>(head->last_modified_unix_ms), static_cast<double>(before_ms), 60000.0);

  auto middle = client->GetRange(bucket, "dir/object.bin", 1000, 5000);
  ASSERT_TRUE(middle.ok()) << middle.status().ToString();
  EXPECT_TRUE(*middle == body.substr(1000, 5000));
  // s3rver answers "bytes=0-0" with the whole object; one byte it is anyway.
  auto first = client->GetRange(bucket, "dir/object.bin", 0, 1);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, body.substr(0, 1));
  auto tail = client->GetRange(bucket, "dir/object.bin", 99990, 100);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(*tail, body.substr(99990));
  EXPECT_EQ(*client->GetRange(bucket, "dir/object.bin", 5, 0), "");

  auto past_end = client->GetRange(bucket, "dir/object.bin", 200000, 10);
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(past_end.status().message().find("416 InvalidRange"), std::string::npos)
      << past_end.status().message();
}

TEST_F(S3ClientTest, ListPaginatesOnePageAtATime) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  constexpr int kObjects = 250;  // with 100 keys a page: 3 pages, like 2500 with 1000
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kObjects; i += 4) {
        char key[32];
        snprintf(key, sizeof key, "data/%05d.csv", i);
        if (!client->PutObject(bucket, key, std::to_string(i)).ok()) ++failures;
      }
    });
  }
  ASSERT_TRUE(client->PutObject(bucket, "other/x.csv", "x").ok());
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);

  int64_t requests_before = client->stats().requests;
  auto lister = client->List(bucket, "data/", 100);
  EXPECT_EQ(client->stats().requests, requests_before)
      << "nothing is sent before the first page is asked for";
  std::vector<size_t> page_sizes;
  std::vector<std::string> keys;
  while (true) {
    auto page = lister->NextPage();
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (!page->has_value()) break;
    page_sizes.push_back((*page)->size());
    for (const S3Object& o : **page) {
      keys.push_back(o.key);
      EXPECT_EQ(o.size, static_cast<int64_t>(std::to_string(std::stoi(o.key.substr(5, 5))).size()));
      EXPECT_EQ(o.etag.size(), 32u);
      EXPECT_GT(o.last_modified_unix_ms, 0);
    }
    ASSERT_LE(page_sizes.size(), 4u) << "the listing does not end";
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{100, 100, 50}));
  EXPECT_EQ(client->stats().requests - requests_before, 3);
  ASSERT_EQ(keys.size(), static_cast<size_t>(kObjects));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  EXPECT_EQ(keys.front(), "data/00000.csv");
  EXPECT_EQ(keys.back(), "data/00249.csv");
  // Done stays done.
  auto after = lister->NextPage();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());

  // The default page size is S3's maximum, 1000: one page for everything.
  auto all = client->List(bucket, "");
  auto page = all->NextPage();
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ((*page)->size(), static_cast<size_t>(kObjects + 1));
  EXPECT_FALSE(all->NextPage()->has_value());

  auto none = client->List(bucket, "nothing/")->NextPage();
  ASSERT_TRUE(none.ok());
  ASSERT_TRUE(none->has_value());
  EXPECT_TRUE((*none)->empty());
}

TEST_F(S3ClientTest, KeysWithSpecialCharactersRoundTrip) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::vector<std::string> keys = {"a & b <c>.txt", "sp ace+plus=eq.csv",
                                   "d\xc3\xa9j\xc3\xa0/vu's \"q\".json", "pct%20not-encoded",
                                   "semi;colon,comma!(x)*"};
  for (const std::string& key : keys) {
    Status s = client->PutObject(bucket, key, key);
    ASSERT_TRUE(s.ok()) << key << ": " << s.ToString();
  }
  auto page = client->List(bucket, "")->NextPage();
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_TRUE(page->has_value());
  std::set<std::string> listed;
  for (const S3Object& o : **page) listed.insert(o.key);
  EXPECT_EQ(listed, std::set<std::string>(keys.begin(), keys.end()));
  for (const std::string& key : keys) {
    auto got = client->GetRange(bucket, key, 0, 1000);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_EQ(*got, key);
    auto independent = server_->GetObject(bucket, key);
    ASSERT_TRUE(independent.ok()) << key;
    EXPECT_EQ(*independent, key);
  }
}

TEST_F(S3ClientTest, DownloadStreamsAMultiMegabyteObjectToAFile) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string body = RandomBytes((6 << 20) + 12345, 2);
  ASSERT_TRUE(server_->PutObject(bucket, "big.bin", body).ok());
  TempDir dir;
  std::string path = dir.Path("big.bin");
  auto object = client->Download(bucket, "big.bin", path);
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  EXPECT_EQ(object->key, "big.bin");
  EXPECT_EQ(object->size, static_cast<int64_t>(body.size()));
  EXPECT_EQ(object->etag, Md5Hex(body));
  EXPECT_GT(object->last_modified_unix_ms, 0);
  EXPECT_TRUE(ReadFile(path) == body);
  EXPECT_EQ(FilesIn(dir.path()), std::vector<std::string>{"big.bin"});

  // An empty object is a download too, and overwriting is allowed.
  ASSERT_TRUE(client->PutObject(bucket, "empty", "").ok());
  auto empty = client->Download(bucket, "empty", path);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->size, 0);
  EXPECT_EQ(ReadFile(path), "");

  auto no_dir = client->Download(bucket, "big.bin", dir.Path("missing/dir/file"));
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.status().code(), StatusCode::kIoError);
  EXPECT_NE(no_dir.status().message().find(dir.Path("missing/dir/file")), std::string::npos)
      << no_dir.status().message();
}

TEST_F(S3ClientTest, MultipartUploadOf20MBRoundTrips) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  TempDir dir;
  std::string body = RandomBytes((20 << 20) + 777, 3);  // 4 full 5 MiB parts and a short one
  std::string path = dir.Write("upload.bin", body);
  S3ClientStats before = client->stats();
  Status s = client->Upload(bucket, "up/load.bin", path, 5 << 20);
  ASSERT_TRUE(s.ok()) << s.ToString();
  S3ClientStats after = client->stats();
  EXPECT_EQ(after.requests - before.requests, 1 + 5 + 1);  // create, 5 parts, complete
  EXPECT_GE(after.bytes_uploaded - before.bytes_uploaded, static_cast<int64_t>(body.size()));

  auto head = client->Head(bucket, "up/load.bin");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->size, static_cast<int64_t>(body.size()));
  auto independent = server_->GetObject(bucket, "up/load.bin");
  ASSERT_TRUE(independent.ok());
  EXPECT_TRUE(*independent == body);
  auto downloaded = client->Download(bucket, "up/load.bin", dir.Path("back.bin"));
  ASSERT_TRUE(downloaded.ok()) << downloaded.status().ToString();
  EXPECT_TRUE(ReadFile(dir.Path("back.bin")) == body);
}

TEST_F(S3ClientTest, SmallFileUploadIsOnePut) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  TempDir dir;
  std::string path = dir.Write("small.csv", "a,b\n1,2\n");
  S3ClientStats before = client->stats();
  ASSERT_TRUE(client->Upload(bucket, "small.csv", path).ok());
  EXPECT_EQ(client->stats().requests - before.requests, 1);
  EXPECT_EQ(*server_->GetObject(bucket, "small.csv"), "a,b\n1,2\n");

  Status too_small = client->Upload(bucket, "x", path, 1 << 20);
  ASSERT_FALSE(too_small.ok());
  EXPECT_EQ(too_small.code(), StatusCode::kInvalidArgument);
  Status missing = client->Upload(bucket, "x", dir.Path("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), StatusCode::kIoError);
  EXPECT_NE(missing.message().find(dir.Path("nope")), std::string::npos);
}

TEST_F(S3ClientTest, MissingKeyIsNotFoundNamingBucketAndKey) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string where = "s3://" + bucket + "/no/such.key";

  auto head = client->Head(bucket, "no/such.key");
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(head.status().message(), where + ": 404 Not Found");  // HEAD answers have no body

  auto get = client->GetRange(bucket, "no/such.key", 0, 10);
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(get.status().message(), where + ": 404 NoSuchKey: The specified key does not exist.");
  EXPECT_FALSE(get.status().retryable());

  TempDir dir;
  auto download = client->Download(bucket, "no/such.key", dir.Path("out"));
  ASSERT_FALSE(download.ok());
  EXPECT_EQ(download.status().code(), StatusCode::kNotFound);
  EXPECT_NE(download.status().message().find(where), std::string::npos);
  EXPECT_TRUE(FilesIn(dir.path()).empty()) << "a failed download leaves nothing behind";
  EXPECT_EQ(client->stats().retries, 0);
}

TEST_F(S3ClientTest, MissingBucketIsNotFound) {
  auto client = Client();
  auto page = client->List("no-such-bucket", "some/prefix")->NextPage();
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(page.status().message(),
            "s3://no-such-bucket/some/prefix: 404 NoSuchBucket: The specified bucket does not exist");
  Status put = client->PutObject("no-such-bucket", "k", "v");
  EXPECT_EQ(put.code(), StatusCode::kNotFound) << put.ToString();
}

TEST_F(S3ClientTest, UnknownAccessKeyIsAPermissionErrorWithoutSecrets) {
  S3Options options = Options(server_->endpoint());
  options.access_key_id = "AKIAWRONGKEY";
  options.secret_access_key = "very/secret+key";
  auto client = MakeClient(options);
  auto page = client->List("any-bucket", "")->NextPage();
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(page.status().retryable());
  const std::string& m = page.status().message();
  EXPECT_EQ(m.rfind("s3://any-bucket: 403 InvalidAccessKeyId: ", 0), 0u) << m;
  EXPECT_EQ(m.find("very/secret+key"), std::string::npos) << m;
  EXPECT_EQ(m.find("Signature="), std::string::npos) << m;
  EXPECT_EQ(client->stats().requests, 1);
}

TEST_F(S3ClientTest, ConnectionRefusedIsUnavailableAfterTheRetryBudget) {
  // A port nobody listens on: bind, note it, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  S3Options options = Options("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  options.retry = FastRetry(3);
  auto client = MakeClient(options);
  auto start = Clock::now();
  auto head = client->Head("bucket", "key");
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.status().code(), StatusCode::kUnavailable);
  // The client spent the retry budget: callers must not retry on top of it.
  EXPECT_FALSE(head.status().retryable());
  EXPECT_NE(head.status().message().find("s3://bucket/key: HEAD failed"), std::string::npos)
      << head.status().message();
  EXPECT_NE(head.status().message().find("gave up after 3 attempts"), std::string::npos)
      << head.status().message();
  EXPECT_EQ(client->stats().requests, 3);
  EXPECT_EQ(client->stats().retries, 2);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST_F(S3ClientTest, StalledServerIsAbortedAndRetried) {
  // Listens but never answers: the kernel accepts the connection, nobody reads.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  S3Options options = Options("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  options.retry = FastRetry(2);
  options.stall_timeout_ms = 1000;
  auto client = MakeClient(options);
  auto start = Clock::now();
  auto got = client->GetRange("bucket", "key", 0, 10);
  auto elapsed = Clock::now() - start;
  close(fd);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("gave up after 2 attempts"), std::string::npos)
      << got.status().message();
  EXPECT_GE(elapsed, std::chrono::milliseconds(1900));
  EXPECT_LT(elapsed, std::chrono::seconds(8));
}

TEST_F(S3ClientTest, CancellationStopsRetrying) {
  CancellationSource cancel;
  S3Options options = Options("http://127.0.0.1:1");  // refused
  options.retry = FastRetry(0);
  options.retry.initial = milliseconds(300);
  options.retry.max_elapsed = std::chrono::minutes(5);
  options.cancel = &cancel;
  auto client = MakeClient(options);
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(500));
    cancel.Cancel();
  });
  auto start = Clock::now();
  auto head = client->Head("bucket", "key");
  canceller.join();
  ASSERT_FALSE(head.ok());
  EXPECT_EQ(head.status().code(), StatusCode::kCancelled) << head.status().ToString();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  // Already cancelled: nothing is sent.
  int64_t requests = client->stats().requests;
  EXPECT_EQ(client->Head("bucket", "key").status().code(), StatusCode::kCancelled);
  EXPECT_EQ(client->stats().requests, requests);
}

TEST_F(S3ClientTest, VirtualHostAddressing) {
  S3Options options = Options(server_->vhost_endpoint());
  options.path_style = false;
  auto client = MakeClient(options);
  std::string bucket = Bucket(client.get());
  ASSERT_TRUE(client->PutObject(bucket, "v/h.txt", "virtual").ok());
  // The object really is in the bucket: read it path-style, independently.
  EXPECT_EQ(*server_->GetObject(bucket, "v/h.txt"), "virtual");
  auto head = client->Head(bucket, "v/h.txt");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->size, 7);
  auto page = client->List(bucket, "v/")->NextPage();
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ((*page)->size(), 1u);
  EXPECT_EQ((**page)[0].key, "v/h.txt");
}

TEST_F(S3ClientTest, PathStyleIsTheDefaultForACustomEndpoint) {
  auto client = Client();
  EXPECT_EQ(client->options().path_style, true);
  auto aws = MakeClient(S3Options{});
  ASSERT_NE(aws, nullptr);
  EXPECT_EQ(aws->options().path_style, false);
}

TEST_F(S3ClientTest, DeleteObjectRemovesItAndIgnoresMissingKeys) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  ASSERT_TRUE(client->PutObject(bucket, "gone.txt", "x").ok());
  ASSERT_TRUE(client->DeleteObject(bucket, "gone.txt").ok());
  EXPECT_EQ(client->Head(bucket, "gone.txt").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(client->DeleteObject(bucket, "never-was.txt").ok());
}

TEST_F(S3ClientTest, CreatingAnExistingBucketFailsWithTheS3Code) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  Status again = client->CreateBucket(bucket);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(again.message().find("409 BucketAlreadyExists"), std::string::npos) << again.message();
}

TEST_F(S3ClientTest, SeveralThreadsShareOneClient) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string body = RandomBytes(1 << 20, 4);
  ASSERT_TRUE(client->PutObject(bucket, "shared.bin", body).ok());
  TempDir dir;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        int64_t offset = (t * 5 + i) * 20000;
        auto got = client->GetRange(bucket, "shared.bin", offset, 20000);
        if (!got.ok() || *got != body.substr(static_cast<size_t>(offset), 20000)) ++bad;
      }
      std::string path = dir.Path("copy" + std::to_string(t));
      auto d = client->Download(bucket, "shared.bin", path);
      if (!d.ok() || ReadFile(path) != body) ++bad;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(client->stats().retries, 0);
}

TEST_F(S3ClientTest, InvalidOptionsAreRejected) {
  S3Options no_scheme = Options("127.0.0.1:9000");
  EXPECT_EQ(S3Client::Make(no_scheme).status().code(), StatusCode::kInvalidArgument);
  S3Options with_password = Options("http://user:hunter2@127.0.0.1:9000");
  auto made = S3Client::Make(with_password);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().message().find("hunter2"), std::string::npos) << made.status().message();
  S3Options half = Options(server_->endpoint());
  half.secret_access_key = "";
  EXPECT_EQ(S3Client::Make(half).status().code(), StatusCode::kInvalidArgument);
}

// --- failures through the fault proxy ----------------------------------------

TEST_F(S3ClientTest, DownloadResumesWhereACutConnectionStopped) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string body = RandomBytes(6 << 20, 5);
  ASSERT_TRUE(server_->PutObject(bucket, "cut.bin", body).ok());
  FaultProxyOptions faults;
  faults.probability = {{FaultKind::kCut, 1.0}};
  faults.max_faults = 1;
  faults.methods = {"GET"};
  faults.path_filter = "cut.bin";
  faults.partial_body_bytes = 2 << 20;
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  auto proxied = MakeClient(Options(proxy->endpoint()));

  TempDir dir;
  auto object = proxied->Download(bucket, "cut.bin", dir.Path("cut.bin"));
  ASSERT_TRUE(object.ok()) << object.status().ToString() << "\n" << proxy->Summary();
  EXPECT_EQ(proxy->faults(FaultKind::kCut), 1) << proxy->Summary();
  EXPECT_TRUE(ReadFile(dir.Path("cut.bin")) == body);
  EXPECT_EQ(object->size, static_cast<int64_t>(body.size()));
  EXPECT_EQ(object->etag, Md5Hex(body));
  EXPECT_EQ(proxied->stats().retries, 1);
  // Resumed, not restarted: every byte came over the wire once.
  EXPECT_EQ(proxied->stats().bytes_downloaded, static_cast<int64_t>(body.size()));
  EXPECT_EQ(FilesIn(dir.path()), std::vector<std::string>{"cut.bin"});
}

TEST_F(S3ClientTest, DownloadResumesAfterAStall) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  std::string body = RandomBytes(3 << 20, 6);
  ASSERT_TRUE(server_->PutObject(bucket, "stall.bin", body).ok());
  FaultProxyOptions faults;
  faults.probability = {{FaultKind::kStallMidBody, 1.0}};
  faults.max_faults = 1;
  faults.methods = {"GET"};
  faults.stall_duration = std::chrono::seconds(20);
  faults.partial_body_bytes = 1 << 20;
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  S3Options options = Options(proxy->endpoint());
  options.stall_timeout_ms = 1000;
  auto proxied = MakeClient(options);

  TempDir dir;
  auto start = Clock::now();
  auto object = proxied->Download(bucket, "stall.bin", dir.Path("stall.bin"));
  ASSERT_TRUE(object.ok()) << object.status().ToString() << "\n" << proxy->Summary();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(proxy->faults(FaultKind::kStallMidBody), 1);
  EXPECT_TRUE(ReadFile(dir.Path("stall.bin")) == body);
  EXPECT_EQ(proxied->stats().bytes_downloaded, static_cast<int64_t>(body.size()));
  proxy->Stop();
}

TEST_F(S3ClientTest, ServerErrorsAndSlowDownAreRetried) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  ASSERT_TRUE(client->PutObject(bucket, "k", "value").ok());
  FaultProxyOptions faults;
  faults.probability = {{FaultKind::kInternalError, 0.5}, {FaultKind::kSlowDown, 0.5}};
  faults.max_faults = 3;
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  auto proxied = MakeClient(Options(proxy->endpoint()));
  auto got = proxied->GetRange(bucket, "k", 0, 100);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "value");
  EXPECT_EQ(proxied->stats().retries, 3) << proxy->Summary();
}

TEST_F(S3ClientTest, PersistentServerErrorsEndUnavailableSayingHowOften) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  FaultProxyOptions faults;
  faults.probability = {{FaultKind::kInternalError, 1.0}};
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  S3Options options = Options(proxy->endpoint());
  options.retry = FastRetry(3);
  auto proxied = MakeClient(options);
  Status s = proxied->PutObject(bucket, "k", "v");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(s.retryable());
  EXPECT_EQ(s.message().rfind("s3://" + bucket + "/k: 500 InternalError", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("gave up after 3 attempts"), std::string::npos) << s.message();
  EXPECT_EQ(proxy->faults(FaultKind::kInternalError), 3);
}

TEST_F(S3ClientTest, TooManyRequestsWaitsForRetryAfter) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  ASSERT_TRUE(client->PutObject(bucket, "k", "v").ok());
  FaultProxyOptions faults;
  faults.probability = {{FaultKind::kTooManyRequests, 1.0}};
  faults.max_faults = 1;
  faults.retry_after_seconds = 1;
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  auto proxied = MakeClient(Options(proxy->endpoint()));  // backoff alone would wait ~20 ms
  auto start = Clock::now();
  auto head = proxied->Head(bucket, "k");
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_GE(Clock::now() - start, milliseconds(950));
  EXPECT_EQ(proxy->faults(FaultKind::kTooManyRequests), 1);
}

TEST_F(S3ClientTest, AccessDeniedFailsAtOnceWithCodeAndMessage) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  FaultProxyOptions faults;
  faults.deny_path_substring = "/private/";
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  auto proxied = MakeClient(Options(proxy->endpoint()));
  auto got = proxied->GetRange(bucket, "private/data.csv", 0, 10);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message(), "s3://" + bucket + "/private/data.csv: 403 AccessDenied: Access Denied");
  EXPECT_EQ(proxied->stats().requests, 1);

  // Without credentials the message says where they would come from.
  S3Options anonymous = Options(proxy->endpoint());
  anonymous.access_key_id.clear();
  anonymous.secret_access_key.clear();
  auto unsigned_client = MakeClient(anonymous);
  // s3rver takes unsigned requests.
  ASSERT_TRUE(unsigned_client->PutObject(bucket, "public.txt", "open").ok());
  auto denied = unsigned_client->Head(bucket, "private/x");
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.status().message().find("no credentials were found"), std::string::npos)
      << denied.status().message();
}

TEST_F(S3ClientTest, FailedMultipartUploadIsAborted) {
  auto client = Client();
  std::string bucket = Bucket(client.get());
  FaultProxyOptions faults;
  faults.deny_path_substring = "partNumber=2&";
  auto proxy = Proxy(faults);
  ASSERT_NE(proxy, nullptr);
  auto proxied = MakeClient(Options(proxy->endpoint()));
  TempDir dir;
  std::string path = dir.Write("big.bin", RandomBytes(11 << 20, 7));
  Status s = proxied->Upload(bucket, "never.bin", path, 5 << 20);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("403 AccessDenied"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("part 2"), std::string::npos) << s.message();
  bool aborted = false;
  for (const auto& event : proxy->events()) {
    aborted |= event.method == "DELETE" && event.target.find("uploadId=") != std::string::npos;
  }
  EXPECT_TRUE(aborted) << proxy->Summary();
  EXPECT_EQ(client->Head(bucket, "never.bin").status().code(), StatusCode::kNotFound);
}

TEST(CheckDownloadedSize, SameEtagMustHaveTheListedSize) {
  S3Object got;
  got.etag = "abc";
  got.size = 100;
  EXPECT_TRUE(CheckDownloadedSize("s3://b/k", got, 100, "abc").ok());
  // The object was replaced meanwhile: its own Content-Length was checked.
  EXPECT_TRUE(CheckDownloadedSize("s3://b/k", got, 250, "other").ok());
  Status short_body = CheckDownloadedSize("s3://b/k", got, 250, "abc");
  ASSERT_FALSE(short_body.ok());
  EXPECT_EQ(short_body.code(), StatusCode::kUnavailable);
  EXPECT_NE(short_body.message().find("s3://b/k: downloaded 100 bytes, but the listing says 250"),
            std::string::npos)
      << short_body.message();
}

}  // namespace
}  // namespace sluice::io
