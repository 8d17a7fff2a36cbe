#include "harness/http_test_server.h"

#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "harness/subprocess.h"

#ifndef SLUICE_HTTP_SERVER_SCRIPT
#define SLUICE_HTTP_SERVER_SCRIPT ""
#endif

namespace sluice::testing {
namespace {

constexpr int kStartTimeoutMs = 30000;
constexpr long kRequestTimeoutMs = 120000;
constexpr const char* kListening = "listening ";

std::string ScriptPath() {
  const char* env = std::getenv("SLUICE_HTTP_SERVER_SCRIPT");
  if (env != nullptr && *env != '\0') return env;
  return SLUICE_HTTP_SERVER_SCRIPT;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool HasHeader(const std::vector<std::string>& headers, std::string_view name) {
  std::string prefix = Lower(name) + ":";
  for (const std::string& h : headers) {
    if (Lower(h.substr(0, prefix.size())) == prefix) return true;
  }
  return false;
}

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<HttpReply*>(user)->body.append(data, size * n);
  return size * n;
}

// One header line; a new status line (after 100 Continue) starts afresh.
size_t AppendHeader(char* data, size_t size, size_t n, void* user) {
  auto* reply = static_cast<HttpReply*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    reply->headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  reply->headers[Lower(line.substr(0, colon))] = std::string(value);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One request on its own connection. A body (even empty) makes it a POST.
Result<HttpReply> Perform(const std::string& method, const std::string& url, const std::string_view* body,
                          const std::vector<std::string>& headers) {
  GlobalInit();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::Internal("curl_easy_init failed");
  CURL* c = curl.get();
  HttpReply reply;
  char error[CURL_ERROR_SIZE] = {0};
  std::vector<std::string> lines = headers;
  if (body != nullptr) {
    if (!HasHeader(headers, "Content-Type")) lines.push_back("Content-Type: application/json");
    lines.push_back("Expect:");  // no 100-continue round trip for large bodies
  }
  std::unique_ptr<curl_slist, SlistDeleter> list;
  for (const std::string& line : lines) {
    curl_slist* head = curl_slist_append(list.get(), line.c_str());
    if (head == nullptr) return Status::Internal("curl_slist_append failed");
    if (list == nullptr) list.reset(head);  // later appends keep the head
  }
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, kRequestTimeoutMs);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &AppendHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &reply);
  if (body != nullptr) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    // A null POSTFIELDS would make curl call a read function instead.
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data() != nullptr ? body->data() : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  if (method != "GET" && method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Status::Unavailable(method + " " + url + ": " + (error[0] ? error : curl_easy_strerror(rc)) +
                               " (curl error " + std::to_string(static_cast<int>(rc)) + ")");
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

std::string Escape(std::string_view s) {
  GlobalInit();
  char* escaped = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  if (escaped == nullptr) return std::string(s);
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

}  // namespace

std::string HttpReply::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? "" : it->second;
}

Result<std::unique_ptr<HttpTestServer>> HttpTestServer::Start(HttpTestServerOptions options) {
  std::string script = ScriptPath();
  if (script.empty() || access(script.c_str(), R_OK) != 0) {
    return Status::NotFound(
        "the HTTP test server script '" + script +
        "' is not readable: set SLUICE_HTTP_SERVER_SCRIPT to tests/http_server/server.js");
  }
  std::unique_ptr<HttpTestServer> server(new HttpTestServer());
  SLUICE_RETURN_IF_ERROR(server->Launch(script, options));
  return server;
}

Status HttpTestServer::Launch(const std::string& script, const HttpTestServerOptions& options) {
  // --port 0: the kernel picks a free port and the server prints it, so no
  // race with other servers. --exit-with-parent: no orphan if the test dies.
  std::vector<std::string> argv = {"node", script, "--port", "0", "--exit-with-parent"};
  if (options.discard) argv.push_back("--discard");
  SubprocessOptions run;
  run.timeout_ms = 0;  // lives as long as the test wants it
  auto process = Subprocess::Start(argv, run);
  if (!process.ok()) {
    return process.status().WithContext("cannot start " + script +
                                        " (is Node.js installed and `node` on PATH?)");
  }
  process_ = std::move(process).value();

  // "listening <port>\n": wait for the whole line, not just its start.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  bool started = process_->WaitForOutput(kListening, kStartTimeoutMs);
  std::string out;
  size_t at = std::string::npos;
  while (started) {
    out = process_->StdoutSoFar();
    at = out.find(kListening);
    if (at != std::string::npos && out.find('\n', at) != std::string::npos) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      started = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!started) {
    process_->Kill(SIGKILL);
    SubprocessResult result = process_->Wait();
    return Status::Unavailable(script + " did not start (" + DescribeExit(result) +
                               "): " + Tail(result.out + result.err, 4000));
  }
  port_ = std::atoi(out.c_str() + at + std::strlen(kListening));
  if (port_ <= 0)
    return Status::Internal("cannot read the port from the server's output: " + Tail(out, 2000));
  running_ = true;
  auto probe = Stats();
  if (!probe.ok()) return probe.status().WithContext(script + " listens but does not answer");
  return Status::OK();
}

HttpTestServer::~HttpTestServer() { (void)Stop(); }

Status HttpTestServer::Stop() {
  if (process_ == nullptr) return Status::OK();
  process_->Kill(SIGKILL);
  process_->Wait();
  running_ = false;
  return Status::OK();
}

std::string HttpTestServer::OutputTail(size_t max_bytes) const {
  if (process_ == nullptr) return "";
  return Tail(process_->StdoutSoFar() + process_->StderrSoFar(), max_bytes);
}

std::string HttpTestServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string HttpTestServer::Url(std::string_view path) const { return base_url() + std::string(path); }

Result<HttpReply> HttpTestServer::Get(std::string_view path, std::vector<std::string> headers) const {
  return Perform("GET", Url(path), nullptr, headers);
}

Result<HttpReply> HttpTestServer::Post(std::string_view path, std::string_view body,
                                       std::vector<std::string> headers) const {
  return Perform("POST", Url(path), &body, headers);
}

Result<nlohmann::json> HttpTestServer::Control(const std::string& method, const std::string& path,
                                               std::string_view body) const {
  std::string url = Url(path);
  SLUICE_ASSIGN_OR_RETURN(HttpReply reply, Perform(method, url, method == "POST" ? &body : nullptr, {}));
  if (reply.status / 100 != 2) {
    StatusCode kind = reply.status == 404 ? StatusCode::kNotFound : StatusCode::kInvalidArgument;
    return Status(
        kind, method + " " + url + ": HTTP " + std::to_string(reply.status) + ": " + Tail(reply.body, 2000));
  }
  nlohmann::json parsed = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Status::Internal(method + " " + url + " answered invalid JSON: " + Tail(reply.body, 2000));
  }
  return parsed;
}

Status HttpTestServer::SetFaults(std::string_view json) const {
  return Control("POST", "/__faults", json).status();
}

Status HttpTestServer::Reset() const { return Control("POST", "/__reset", "").status(); }

Result<int64_t> HttpTestServer::Bump(std::string_view path) const {
  SLUICE_ASSIGN_OR_RETURN(nlohmann::json answer, Control("POST", "/__bump?path=" + Escape(path), ""));
  return answer.value("version", int64_t{0});
}

Result<int64_t> HttpTestServer::Count(std::string_view path_and_query) const {
  SLUICE_ASSIGN_OR_RETURN(nlohmann::json answer,
                          Control("GET", "/__count?url=" + Escape(path_and_query), ""));
  return answer.value("count", int64_t{0});
}

Result<nlohmann::json> HttpTestServer::Stats() const { return Control("GET", "/__stats", ""); }

Result<nlohmann::json> HttpTestServer::Received() const { return Control("GET", "/__received", ""); }

Result<int64_t> HttpTestServer::Dump(const std::string& file) const {
  SLUICE_ASSIGN_OR_RETURN(nlohmann::json answer, Control("POST", "/__dump?file=" + Escape(file), ""));
  return answer.value("rows", int64_t{0});
}

Result<nlohmann::json> HttpTestServer::Hooks() const { return Control("GET", "/__hooks", ""); }

}  // namespace sluice::testing
