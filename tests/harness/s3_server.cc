#include "harness/s3_server.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <system_error>
#include <vector>

#include "harness/subprocess.h"


#ifndef SLUICE_S3RVER_DIR
#define SLUICE_S3RVER_DIR ""
#endif

namespace sluice::testing {
namespace {

constexpr int kStartTimeoutMs = 60000;
constexpr const char* kListening = "S3rver listening on ";

std::string S3rverDir() {
  const char* env = std::getenv("SLUICE_S3RVER_DIR");
  if (env != nullptr && *env != '\0') return env;
  return SLUICE_S3RVER_DIR;
}

// Keys keep their '/'; everything but RFC 3986 unreserved is escaped.
std::string EncodePath(std::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

size_t AppendToString(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// One unsigned request; body_file (if any) is streamed as the body.
Result<std::string> Http(const std::string& method, const std::string& url, std::string_view body,
                         FILE* body_file = nullptr, int64_t body_file_size = 0) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::Internal("curl_easy_init failed");
  std::string response;
  std::string_view rest = body;  // what the read callback has still to send
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendToString);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  if (method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    if (body_file != nullptr) {
      curl_easy_setopt(c, CURLOPT_READDATA, body_file);  // default read function: fread
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_file_size));
    } else {
      curl_easy_setopt(
          c, CURLOPT_READFUNCTION, +[](char* buf, size_t size, size_t n, void* user) -> size_t {
            auto* left = static_cast<std::string_view*>(user);
            size_t take = std::min(size * n, left->size());
            std::memcpy(buf, left->data(), take);
            left->remove_prefix(take);
            return take;
          });
      curl_easy_setopt(c, CURLOPT_READDATA, &rest);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Status::Unavailable(method + " " + url + ": " + (error[0] ? error : curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (code / 100 != 2) {
    StatusCode kind = code == 404 ? StatusCode::kNotFound : StatusCode::kInvalidArgument;
    return Status(kind, method + " " + url + ": HTTP " + std::to_string(code) + ": " + Tail(response, 2000));
  }
  return response;
}

// Runs when the test process is gone (its end of the pipe closes, however
// it died): kills s3rver if it still runs from this directory and removes
// the directory. $1 is the server's directory.
constexpr const char* kWatchdogScript = R"sh(
read -r _unused
pidfile="$1/s3rver.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1/data"; then
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
)sh";

}  // namespace

Result<std::unique_ptr<S3Server>> S3Server::Start() {
  std::string s3rver_js = S3rverDir() + "/node_modules/s3rver/bin/s3rver.js";
  if (access(s3rver_js.c_str(), R_OK) != 0) {
    return Status::NotFound("s3rver is not installed at '" + s3rver_js +
                            "': run scripts/setup.sh --tests (or npm ci --prefix tests/s3rver)");
  }
  std::unique_ptr<S3Server> server(new S3Server());
  char templ[] = "/tmp/sluice-s3-XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    return Status::IoError(std::string("mkdtemp(/tmp/sluice-s3-XXXXXX): ") + std::strerror(errno));
  }
  server->dir_ = templ;
  SLUICE_RETURN_IF_ERROR(server->StartWatchdog());
  SLUICE_RETURN_IF_ERROR(server->Launch(s3rver_js));
  return server;
}

Status S3Server::Launch(const std::string& s3rver_js) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir(), ec);
  if (ec) return Status::IoError("cannot create " + data_dir() + ": " + ec.message());
  // --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation
  // tokens with DES, which Node 17+ (OpenSSL 3) only has in the legacy
  // provider; without it every truncated listing fails with a 500.
  // -p 0: the kernel picks a free port and s3rver prints it, so no race
  // with other servers. --service-endpoint localhost: BUCKET.s3.localhost
  // is virtual-host addressing.
  // clang-format off
  std::vector<std::string> argv = {"node", "--openssl-legacy-provider", s3rver_js,
                                   "--directory", data_dir(),
                                   "--address", "127.0.0.1",
                                   "--port", "0",
                                   "--silent",
                                   "--service-endpoint", "localhost"};
  // clang-format on
  SubprocessOptions run;
  run.cwd = dir_;
  run.timeout_ms = 0;  // lives as long as the test wants it
  auto process = Subprocess::Start(argv, run);
  if (!process.ok()) {
    return process.status().WithContext("cannot start s3rver (is Node.js installed and `node` on PATH?)");
  }
  process_ = std::move(process).value();
  {
    std::ofstream pid_file(dir_ + "/s3rver.pid");
    pid_file << process_->pid() << "\n";
  }

  if (!process_->WaitForOutput(kListening, kStartTimeoutMs)) {
    process_->Kill(SIGKILL);
    SubprocessResult result = process_->Wait();
    return Status::Unavailable("s3rver did not start (" + DescribeExit(result) +
                               "): " + Tail(result.out + result.err, 4000));
  }
  std::string out = process_->StdoutSoFar();
  size_t at = out.find(kListening);
  size_t colon = out.find(':', at + std::strlen(kListening));
  port_ = colon == std::string::npos ? 0 : std::atoi(out.c_str() + colon + 1);
  if (port_ <= 0) {
    return Status::Internal("cannot read s3rver's port from its output: " + Tail(out, 2000));
  }
  running_ = true;
  // It prints the line once it listens; make sure it also answers.
  auto probe = Http("GET", endpoint() + "/", "");
  if (!probe.ok()) return probe.status().WithContext("s3rver listens but does not answer");
  return Status::OK();
}

Status S3Server::StartWatchdog() {
  // setsid -f: the watchdog leaves our process tree and session, so neither
  // ctest killing the test's tree nor a terminal's Ctrl-C takes it along.
  SLUICE_ASSIGN_OR_RETURN(
      watchdog_fd_,
      sluice::testing::StartWatchdog(
          {"setsid", "-f", "/bin/sh", "-c", kWatchdogScript, "sluice-s3-watchdog", dir_}, "s3rver watchdog"));
  return Status::OK();
}

S3Server::~S3Server() {
  (void)Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  if (watchdog_fd_ >= 0) close(watchdog_fd_);  // the watchdog finds nothing left and exits
}

Status S3Server::Stop() {
  if (process_ == nullptr) return Status::OK();
  process_->Kill(SIGKILL);
  process_->Wait();
  running_ = false;
  return Status::OK();
}

std::string S3Server::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string S3Server::vhost_endpoint() const { return "http://s3.localhost:" + std::to_string(port_); }

std::string S3Server::OutputTail(size_t max_bytes) const {
  if (process_ == nullptr) return "";
  return Tail(process_->StdoutSoFar() + process_->StderrSoFar(), max_bytes);
}

Status S3Server::CreateBucket(const std::string& bucket) const {
  return Http("PUT", endpoint() + "/" + EncodePath(bucket, false), "").status();
}

Status S3Server::PutObject(const std::string& bucket, const std::string& key, std::string_view bytes) const {
  return Http("PUT", endpoint() + "/" + EncodePath(bucket, false) + "/" + EncodePath(key, true), bytes)
      .status();
}

Status S3Server::PutFile(const std::string& bucket, const std::string& key, const std::string& path) const {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::IoError("cannot stat " + path + ": " + ec.message());
  return Http("PUT", endpoint() + "/" + EncodePath(bucket, false) + "/" + EncodePath(key, true), "",
              file.get(), static_cast<int64_t>(size))
      .status();
}

Result<std::string> S3Server::GetObject(const std::string& bucket, const std::string& key) const {
  return Http("GET", endpoint() + "/" + EncodePath(bucket, false) + "/" + EncodePath(key, true), "");
}

}  // namespace sluice::testing
