#include "io/s3/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>

#include "core/redact.h"
#include "core/retry.h"
#include "io/s3/s3_xml.h"
#include "io/s3/sigv4.h"

namespace sluice::io {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxBufferedBody = 64 << 20;  // listings and other XML answers
constexpr size_t kMaxErrorBody = 64 << 10;     // error documents are small
constexpr size_t kHashChunk = 1 << 20;
constexpr size_t kMaxPooledHandles = 16;
constexpr const char* kUserAgent = "sluice-s3/0.1";

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string StripQuotes(std::string_view s) {
  s = TrimView(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

std::optional<int64_t> ParseInt(std::string_view s) {
  s = TrimView(s);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string Errno(int e) { return std::strerror(e); }

std::string FormatSeconds(Clock::duration d) {
  double secs = std::chrono::duration<double>(d).count();
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", secs);
  return buf;
}

const char* ReasonPhrase(long status) {
  switch (status) {
    case 301:
      return "Moved Permanently";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 412:
      return "Precondition Failed";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

// ---------------------------------------------------------------------------
// Request bodies. Rewind() is called before every attempt.

class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual int64_t size() const = 0;
  virtual void Rewind() = 0;
  /// Up to n bytes; 0 at the end.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
};

class MemoryBody : public BodySource {
 public:
  explicit MemoryBody(std::string_view data) : data_(data) {}
  int64_t size() const override { return static_cast<int64_t>(data_.size()); }
  void Rewind() override { pos_ = 0; }
  Result<size_t> Read(char* buf, size_t n) override {
    size_t take = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// A byte range of an open file, read with pread so several bodies may
// share one descriptor.
class FileRegionBody : public BodySource {
 public:
  FileRegionBody(int fd, std::string path, int64_t offset, int64_t length)
      : fd_(fd), path_(std::move(path)), offset_(offset), length_(length) {}
  int64_t size() const override { return length_; }
  void Rewind() override { pos_ = 0; }
  Result<size_t> Read(char* buf, size_t n) override {
    size_t want = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(n), length_ - pos_));
    if (want == 0) return size_t{0};
    while (true) {
      ssize_t got = pread(fd_, buf, want, offset_ + pos_);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Status::IoError("cannot read local file '" + path_ + "': " + Errno(errno));
      if (got == 0) return Status::IoError("local file '" + path_ + "' became shorter while it was uploaded");
      pos_ += got;
      return static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  std::string path_;
  int64_t offset_;
  int64_t length_;
  int64_t pos_ = 0;
};

Result<std::string> Sha256OfBody(BodySource* body) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Internal("cannot initialise SHA-256");
  }
  std::string buf(kHashChunk, '\0');
  body->Rewind();
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, body->Read(buf.data(), buf.size()));
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
  }
  body->Rewind();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

// ---------------------------------------------------------------------------
// Requests, responses, sinks.

struct Request {
  std::string method;  // GET HEAD PUT POST DELETE
  std::string bucket;
  std::string key;  // "" for bucket operations
  QueryList query;
  HeaderList headers;  // besides Host and the x-amz-* ones the signer adds
  BodySource* body = nullptr;
  std::string payload_hash;    // "" = hash of the empty body
  bool ignore_cancel = false;  // cleanup (AbortMultipartUpload) runs even when cancelled
  bool reset_backoff_on_progress = false;

  void SetHeader(const std::string& name, std::string value) {
    RemoveHeader(name);
    headers.emplace_back(name, std::move(value));
  }
  void RemoveHeader(const std::string& name) {
    std::string lower = Lower(name);
    std::erase_if(headers, [&](const auto& h) { return Lower(h.first) == lower; });
  }
};

struct Response {
  long status = 0;
  HeaderList headers;  // names lowercased
  std::string body;    // when no sink took it (XML answers, error documents)

  std::optional<std::string> Header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return value;
    }
    return std::nullopt;
  }
};

// Receives the body of a 2xx response.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  /// Status line and headers of a 2xx response, before any of its body.
  virtual Status Begin(const Response& head) = 0;
  /// Sets *stop to end the transfer early, successfully.
  virtual Status Write(std::string_view data, bool* stop) = 0;
};

struct Attempt {
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  Response response;
  Status sink_status;  // the sink's or the body source's own failure
  bool stopped_early = false;
  bool cancelled = false;
  bool stalled = false;
  int64_t body_bytes = 0;  // delivered to the sink
};

enum class Outcome { kOk, kRetry, kFail };

struct Verdict {
  Outcome outcome = Outcome::kOk;
  Status status;  // why, when not kOk
  std::optional<milliseconds> retry_after;
};

// Per-attempt state the curl callbacks see.
struct Transfer {
  CURL* curl = nullptr;
  Response* response = nullptr;
  ResponseSink* sink = nullptr;
  BodySource* body = nullptr;
  const CancellationSource* cancel = nullptr;
  std::atomic<int64_t>* bytes_down = nullptr;
  std::atomic<int64_t>* bytes_up = nullptr;
  // Stall detection: curl's own low-speed check averages over several
  // seconds, so a transfer that stops after a burst would look alive for
  // too long; the progress callback watches the byte counters instead.
  Clock::duration stall_timeout{};
  Clock::time_point last_progress{};
  curl_off_t last_down = 0;
  curl_off_t last_up = 0;
  bool head_seen = false;
  bool to_sink = false;
  bool stopped = false;
  bool cancelled = false;
  bool stalled = false;
  int64_t sink_bytes = 0;
  Status failure;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after 100 Continue, say): forget earlier headers.
    t->response->headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->response->headers.emplace_back(Lower(TrimView(line.substr(0, colon))),
                                      std::string(TrimView(line.substr(colon + 1))));
  }
  return size * n;
}

Status BeginSink(Transfer* t) {
  t->head_seen = true;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  t->response->status = code;
  t->to_sink = t->sink != nullptr && code / 100 == 2;
  return t->to_sink ? t->sink->Begin(*t->response) : Status::OK();
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (!t->head_seen) {
    Status s = BeginSink(t);
    if (!s.ok()) {
      t->failure = s;
      return 0;
    }
  }
  if (t->to_sink) {
    bool stop = false;
    Status s = t->sink->Write(std::string_view(data, len), &stop);
    t->sink_bytes += static_cast<int64_t>(len);
    t->bytes_down->fetch_add(static_cast<int64_t>(len), std::memory_order_relaxed);
    if (!s.ok()) {
      t->failure = s;
      return 0;
    }
    if (stop) {
      t->stopped = true;
      return 0;
    }
    return len;
  }
  size_t cap = t->response->status / 100 == 2 ? kMaxBufferedBody : kMaxErrorBody;
  if (t->response->status / 100 == 2 && t->response->body.size() + len > cap) {
    t->failure = Status::DataError("response body larger than " + std::to_string(cap) + " bytes");
    return 0;
  }
  if (t->response->body.size() < cap)
    t->response->body.append(data, std::min(len, cap - t->response->body.size()));
  t->bytes_down->fetch_add(static_cast<int64_t>(len), std::memory_order_relaxed);
  return len;
}

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  Result<size_t> got = t->body->Read(buf, size * n);
  if (!got.ok()) {
    t->failure = got.status();
    return CURL_READFUNC_ABORT;
  }
  t->bytes_up->fetch_add(static_cast<int64_t>(*got), std::memory_order_relaxed);
  return *got;
}

int OnProgress(void* user, curl_off_t, curl_off_t down, curl_off_t, curl_off_t up) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel != nullptr && t->cancel->cancelled()) {
    t->cancelled = true;
    return 1;
  }
  Clock::time_point now = Clock::now();
  if (down != t->last_down || up != t->last_up) {
    t->last_down = down;
    t->last_up = up;
    t->last_progress = now;
  } else if (now - t->last_progress > t->stall_timeout) {
    t->stalled = true;
    return 1;
  }
  return 0;
}

bool RetryableCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_AGAIN:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

// Retry-After: whole seconds or an HTTP date.
std::optional<milliseconds> ParseRetryAfter(const Response& response) {
  std::optional<std::string> value = response.Header("retry-after");
  if (!value) return std::nullopt;
  if (std::optional<int64_t> secs = ParseInt(*value); secs && *secs >= 0) return milliseconds(*secs * 1000);
  time_t when = curl_getdate(value->c_str(), nullptr);
  if (when < 0) return std::nullopt;
  int64_t delta = static_cast<int64_t>(when) - static_cast<int64_t>(time(nullptr));
  return milliseconds(std::max<int64_t>(0, delta) * 1000);
}

// Content-Range: bytes START-END/TOTAL (TOTAL may be '*').
bool ParseContentRange(const Response& response, int64_t* start, int64_t* total) {
  std::optional<std::string> value = response.Header("content-range");
  if (!value) return false;
  std::string_view v = TrimView(*value);
  if (v.rfind("bytes ", 0) != 0) return false;
  v.remove_prefix(6);
  size_t dash = v.find('-');
  size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return false;
  std::optional<int64_t> s = ParseInt(v.substr(0, dash));
  if (!s) return false;
  *start = *s;
  std::optional<int64_t> t = ParseInt(v.substr(slash + 1));
  *total = t ? *t : -1;
  return true;
}

S3Object ObjectFromHeaders(const std::string& key, const Response& response) {
  S3Object object;
  object.key = key;
  object.etag = StripQuotes(response.Header("etag").value_or(""));
  int64_t start = 0;
  int64_t total = -1;
  if (ParseContentRange(response, &start, &total) && total >= 0) {
    object.size = total;
  } else if (std::optional<int64_t> length = ParseInt(response.Header("content-length").value_or(""))) {
    object.size = *length;
  }
  if (std::optional<std::string> modified = response.Header("last-modified")) {
    time_t t = curl_getdate(modified->c_str(), nullptr);
    if (t >= 0) object.last_modified_unix_ms = static_cast<int64_t>(t) * 1000;
  }
  return object;
}

struct Endpoint {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port], lowercased
  std::string base_path;  // "" or "/prefix" without a trailing slash
  bool host_is_ip = false;
};

Result<Endpoint> ParseEndpoint(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad S3 endpoint '" + RedactUrl(url) + "': " + why +
                                   " (expected http[s]://host[:port])");
  };
  size_t sep = url.find("://");
  if (sep == std::string::npos) return bad("no scheme");
  Endpoint e;
  e.scheme = Lower(url.substr(0, sep));
  if (e.scheme != "http" && e.scheme != "https") return bad("the scheme must be http or https");
  std::string rest = url.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  e.authority = Lower(rest.substr(0, slash));
  if (slash != std::string::npos) {
    if (rest[slash] != '/') return bad("query strings and fragments are not allowed");
    e.base_path = rest.substr(slash);
    while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  }
  if (e.authority.empty()) return bad("no host");
  if (e.authority.find('@') != std::string::npos) {
    return bad("credentials belong in access_key_id/secret_access_key, not in the URL");
  }
  std::string host = e.authority;
  if (host.front() == '[') {
    e.host_is_ip = true;
  } else {
    host = host.substr(0, host.find(':'));
    e.host_is_ip = !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
  }
  return e;
}

// Bucket names that can be a DNS label prefix of the endpoint host.
bool VirtualHostable(const std::string& bucket, bool https) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && !https);
    if (!ok) return false;
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

}  // namespace

// ---------------------------------------------------------------------------

class S3Client::Impl {
 public:
  Impl(S3Options options, Endpoint endpoint) : options_(std::move(options)), endpoint_(std::move(endpoint)) {}

  ~Impl() {
    for (CURL* h : pool_) curl_easy_cleanup(h);
  }

  const S3Options& options() const { return options_; }

  S3ClientStats stats() const {
    S3ClientStats s;
    s.requests = requests_.load();
    s.retries = retries_.load();
    s.bytes_downloaded = bytes_down_.load();
    s.bytes_uploaded = bytes_up_.load();
    return s;
  }

  using Before = std::function<Status(Request*)>;
  using Judge = std::function<std::optional<Verdict>(const Request&, const Attempt&)>;

  /// Runs req until it succeeds, fails for good, or the retry policy is
  /// exhausted. before() adjusts the request before each attempt; judge()
  /// may decide an attempt's outcome before the generic rules do.
  Status Execute(Request* req, ResponseSink* sink, Response* out, const Before& before = nullptr,
                 const Judge& judge = nullptr) const {
    RetryState retry(options_.retry);
    Clock::time_point start = Clock::now();
    const CancellationSource* cancel = req->ignore_cancel ? nullptr : options_.cancel;
    for (int attempt = 1;; ++attempt) {
      if (cancel != nullptr && cancel->cancelled()) return Status::Cancelled(Where(*req) + ": cancelled");
      if (before) SLUICE_RETURN_IF_ERROR(before(req));
      Attempt a = PerformOnce(*req, sink, cancel);
      std::optional<Verdict> custom = judge ? judge(*req, a) : std::nullopt;
      Verdict v = custom ? *std::move(custom) : Classify(*req, a);
      if (v.outcome == Outcome::kOk) {
        if (out != nullptr) *out = std::move(a.response);
        return Status::OK();
      }
      if (v.outcome == Outcome::kFail) return v.status;

      if (req->reset_backoff_on_progress && a.body_bytes > 0) {
        // A transfer that moved data before it broke is resumed, not
        // failed: each stretch without progress gets the whole budget.
        retry = RetryState(options_.retry);
        start = Clock::now();
      }
      milliseconds delay = retry.NextDelay();
      Clock::duration elapsed = Clock::now() - start;
      if (delay.count() >= 0 && v.retry_after) {
        if (elapsed + *v.retry_after > options_.retry.max_elapsed) {
          delay = milliseconds(-1);
        } else {
          delay = std::max(delay, *v.retry_after);
        }
      }
      if (delay.count() < 0) {
        // The retry budget is spent: not retryable by callers (a whole-load
        // [retry] would multiply the time the user was promised).
        return Status(StatusCode::kUnavailable,
                      v.status.message() + " (gave up after " + std::to_string(attempt) +
                          (attempt == 1 ? " attempt" : " attempts") + " in " + FormatSeconds(elapsed) + ")",
                      /*retryable=*/false);
      }
      retries_.fetch_add(1, std::memory_order_relaxed);
      if (!SleepUnlessCancelled(delay, cancel)) return Status::Cancelled(Where(*req) + ": cancelled");
    }
  }

  std::string Where(const Request& req) const { return S3UrlString(req.bucket, req.key); }

  // --- one attempt ---------------------------------------------------------

  Attempt PerformOnce(const Request& req, ResponseSink* sink, const CancellationSource* cancel) const {
    Attempt a;
    CURL* curl = AcquireHandle();
    if (curl == nullptr) {
      a.curl = CURLE_FAILED_INIT;
      a.curl_error = "curl_easy_init failed";
      return a;
    }

    // Address: path style puts the bucket in the path, virtual-host style
    // in the host name.
    bool path_style = options_.path_style.value_or(false) || req.bucket.empty() || endpoint_.host_is_ip ||
                      !VirtualHostable(req.bucket, endpoint_.scheme == "https");
    std::string host = path_style ? endpoint_.authority : req.bucket + "." + endpoint_.authority;
    std::string prefix = endpoint_.base_path;
    if (path_style && !req.bucket.empty()) prefix += "/" + UriEncode(req.bucket, false);
    SigV4Request signing;
    signing.method = req.method;
    signing.canonical_uri = S3CanonicalUri(prefix, req.key);
    signing.query = req.query;
    signing.payload_hash = req.payload_hash.empty() ? std::string(kEmptyPayloadSha256) : req.payload_hash;
    signing.headers = req.headers;
    signing.headers.emplace_back("Host", host);
    signing.headers.emplace_back("X-Amz-Content-Sha256", signing.payload_hash);
    if (!options_.access_key_id.empty()) {
      SigV4Credentials credentials{options_.access_key_id, options_.secret_access_key,
                                   options_.session_token};
      SignSigV4(&signing, credentials, options_.region, "s3", std::chrono::system_clock::now());
    }

    std::string url = endpoint_.scheme + "://" + host + signing.canonical_uri;
    std::string query = CanonicalQueryString(req.query);
    if (!query.empty()) url += "?" + query;

    curl_slist* header_list = nullptr;
    bool has_content_type = false;
    for (const auto& [name, value] : signing.headers) {
      if (Lower(name) == "content-type") has_content_type = true;
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      header_list = curl_slist_append(header_list, line.c_str());
    }
    // curl would label a POST body as a form; S3 takes Content-Type of
    // CreateMultipartUpload as the object's, so send none unless asked.
    if (!has_content_type) header_list = curl_slist_append(header_list, "Content-Type:");

    Transfer t;
    t.curl = curl;
    t.response = &a.response;
    t.sink = sink;
    t.body = req.body;
    t.cancel = cancel;
    t.bytes_down = &bytes_down_;
    t.bytes_up = &bytes_up_;
    t.stall_timeout = milliseconds(options_.stall_timeout_ms);
    t.last_progress = Clock::now();
    if (req.body != nullptr) req.body->Rewind();

    char error_buffer[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);  // keys like "a/../b" are names, not paths
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, kUserAgent);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    // A backstop for the progress callback's stall check (see Transfer).
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>((options_.stall_timeout_ms + 999) / 1000 + 5));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnWrite);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    if (req.method == "GET") {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (req.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (req.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(req.body ? req.body->size() : 0));
    } else if (req.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(req.body ? req.body->size() : 0));
    } else {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    MemoryBody empty("");
    if (req.method == "PUT" || req.method == "POST") {
      if (req.body == nullptr) t.body = &empty;
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, &OnRead);
      curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    }

    requests_.fetch_add(1, std::memory_order_relaxed);
    a.curl = curl_easy_perform(curl);
    if (a.curl == CURLE_OK && !t.head_seen) {
      // No body bytes came (HEAD, empty objects, 204): the sink still
      // learns about the response.
      Status s = BeginSink(&t);
      if (!s.ok()) t.failure = s;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    a.response.status = code;
    a.curl_error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(a.curl);
    a.sink_status = t.failure;
    a.stopped_early = t.stopped;
    a.cancelled = t.cancelled;
    a.stalled = t.stalled;
    a.body_bytes = t.sink_bytes;

    // Drop every pointer into this frame (error buffer, callbacks' data,
    // headers) before the handle goes back to the pool; its connections stay.
    curl_easy_reset(curl);
    curl_slist_free_all(header_list);
    ReleaseHandle(curl);
    return a;
  }

  // --- what an attempt means -----------------------------------------------

  std::string HttpErrorText(const Request& req, const Response& r) const {
    S3ErrorInfo info = ParseS3Error(r.body);
    // HEAD answers have no body; some servers (s3rver) name the error in headers.
    if (info.code.empty()) info.code = r.Header("x-amz-error-code").value_or("");
    if (info.message.empty()) info.message = r.Header("x-amz-error-message").value_or("");
    std::string text = Where(req) + ": " + std::to_string(r.status);
    if (!info.code.empty()) {
      text += " " + info.code;
      if (!info.message.empty()) text += ": " + info.message;
    } else {
      text += std::string(" ") + ReasonPhrase(r.status);
      while (!text.empty() && text.back() == ' ') text.pop_back();
    }
    if (std::optional<std::string> region = r.Header("x-amz-bucket-region");
        region && *region != options_.region && (r.status == 301 || r.status == 400 || r.status == 403)) {
      text += " (the bucket is in region " + *region + ", the client signs for " + options_.region + ")";
    }
    if (r.status == 403 && options_.access_key_id.empty()) {
      text +=
          " (no credentials were found: set access_key_id/secret_access_key, AWS_ACCESS_KEY_ID/"
          "AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)";
    }
    return Scrub(std::move(text));
  }

  std::string Scrub(std::string text) const {
    text = RedactSecret(std::move(text), options_.secret_access_key);
    return RedactSecret(std::move(text), options_.session_token);
  }

  Verdict Classify(const Request& req, const Attempt& a) const {
    Verdict v;
    if (a.cancelled) return {Outcome::kFail, Status::Cancelled(Where(req) + ": cancelled"), std::nullopt};
    if (!a.sink_status.ok()) {
      // The sink's own failure (disk full, unexpected response shape);
      // retryable ones are for a fresh attempt.
      return {a.sink_status.retryable() ? Outcome::kRetry : Outcome::kFail,
              a.sink_status.WithContext(Where(req)), std::nullopt};
    }
    if (a.stalled) {
      return {Outcome::kRetry,
              Status::Unavailable(Where(req) + ": " + req.method + " stalled: nothing sent or received for " +
                                  std::to_string(options_.stall_timeout_ms) + " ms"),
              std::nullopt};
    }
    if (a.curl != CURLE_OK && !(a.curl == CURLE_WRITE_ERROR && a.stopped_early)) {
      std::string text = Where(req) + ": " + req.method + " failed: " + a.curl_error;
      if (a.curl == CURLE_OPERATION_TIMEDOUT) {
        text += " (stalled, or no connection within " + std::to_string(options_.connect_timeout_ms) + " ms)";
      }
      text = Scrub(std::move(text));
      if (RetryableCurlCode(a.curl)) return {Outcome::kRetry, Status::Unavailable(text), std::nullopt};
      return {Outcome::kFail, Status::InvalidArgument(text), std::nullopt};
    }
    long status = a.response.status;
    if (status / 100 == 2) return v;
    std::string text = HttpErrorText(req, a.response);
    S3ErrorInfo info = ParseS3Error(a.response.body);
    if (status >= 500 || status == 429 || status == 408 || info.code == "RequestTimeout" ||
        info.code == "SlowDown") {
      return {Outcome::kRetry, Status::Unavailable(text), ParseRetryAfter(a.response)};
    }
    if (status == 404) return {Outcome::kFail, Status::NotFound(text), std::nullopt};
    return {Outcome::kFail, Status::InvalidArgument(text), std::nullopt};
  }

  // --- handles ---------------------------------------------------------------

  CURL* AcquireHandle() const {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!pool_.empty()) {
        CURL* h = pool_.back();
        pool_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void ReleaseHandle(CURL* h) const {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (pool_.size() < kMaxPooledHandles) {
        pool_.push_back(h);
        return;
      }
    }
    curl_easy_cleanup(h);
  }

 private:
  S3Options options_;
  Endpoint endpoint_;
  mutable std::mutex pool_mu_;
  mutable std::vector<CURL*> pool_;  // guarded by pool_mu_
  mutable std::atomic<int64_t> requests_{0};
  mutable std::atomic<int64_t> retries_{0};
  mutable std::atomic<int64_t> bytes_down_{0};
  mutable std::atomic<int64_t> bytes_up_{0};
};

namespace {

// ---------------------------------------------------------------------------
// Sinks of the calls.

// GetRange: keeps [offset, offset + length) even when the server ignores
// the Range header (200) or answers with more than was asked.
class RangeSink : public ResponseSink {
 public:
  RangeSink(int64_t offset, int64_t length) : offset_(offset), length_(length) {}

  Status Begin(const Response& head) override {
    out_.clear();
    skip_ = offset_;
    if (head.status == 206) {
      int64_t start = 0;
      int64_t total = -1;
      if (!ParseContentRange(head, &start, &total)) {
        return Status::Unavailable("206 answer without a usable Content-Range");
      }
      if (start > offset_) {
        return Status::DataError("asked for bytes from " + std::to_string(offset_) + ", got them from " +
                                 std::to_string(start));
      }
      skip_ = offset_ - start;
    }
    return Status::OK();
  }

  Status Write(std::string_view data, bool* stop) override {
    if (skip_ > 0) {
      size_t n = static_cast<size_t>(std::min<int64_t>(skip_, static_cast<int64_t>(data.size())));
      data.remove_prefix(n);
      skip_ -= static_cast<int64_t>(n);
    }
    size_t room = static_cast<size_t>(length_ - static_cast<int64_t>(out_.size()));
    out_.append(data.substr(0, room));
    *stop = static_cast<int64_t>(out_.size()) >= length_;
    return Status::OK();
  }

  std::string Take() { return std::move(out_); }

 private:
  int64_t offset_;
  int64_t length_;
  int64_t skip_ = 0;
  std::string out_;
};

// Download: appends to a temporary file, resuming where a broken attempt
// stopped.
class FileSink : public ResponseSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  // Before each attempt: ask for the rest if we have a start and know
  // which version of the object it belongs to.
  Status Prepare(Request* req) {
    req->RemoveHeader("Range");
    req->RemoveHeader("If-Match");
    if (restart_) {
      SLUICE_RETURN_IF_ERROR(Truncate());
      etag_.clear();
      total_ = -1;
      restart_ = false;
    }
    resuming_ = written_ > 0 && !etag_.empty();
    if (!resuming_ && written_ > 0) SLUICE_RETURN_IF_ERROR(Truncate());
    if (resuming_) {
      req->SetHeader("Range", "bytes=" + std::to_string(written_) + "-");
      req->SetHeader("If-Match", "\"" + etag_ + "\"");
    }
    return Status::OK();
  }

  Status Begin(const Response& head) override {
    std::string etag = StripQuotes(head.Header("etag").value_or(""));
    if (head.status == 206 && resuming_) {
      int64_t start = 0;
      int64_t total = -1;
      if (!ParseContentRange(head, &start, &total) || start != written_) {
        restart_ = true;
        return Status::Unavailable("the resumed download did not continue at byte " +
                                   std::to_string(written_));
      }
      if (!etag.empty() && etag != etag_) {
        // Servers that ignore If-Match (s3rver) still tell us.
        restart_ = true;
        return Status::Unavailable("the object changed during the download (ETag " + etag_ + " -> " + etag +
                                   ")");
      }
      if (total >= 0) total_ = total;
    } else {
      // A whole object: from the start, whatever we had.
      if (written_ > 0) SLUICE_RETURN_IF_ERROR(Truncate());
      etag_ = etag;
      object_ = ObjectFromHeaders("", head);
      total_ = object_.size;
      if (!head.Header("content-length") && !head.Header("content-range")) total_ = -1;
    }
    return Status::OK();
  }

  Status Write(std::string_view data, bool* /*stop*/) override {
    while (!data.empty()) {
      ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::IoError("cannot write '" + path_ + "': " + Errno(errno));
      data.remove_prefix(static_cast<size_t>(n));
      written_ += n;
    }
    return Status::OK();
  }

  void RestartNextTime() { restart_ = true; }
  bool resuming() const { return resuming_; }
  int64_t written() const { return written_; }
  int64_t total() const { return total_; }
  const std::string& etag() const { return etag_; }
  const S3Object& object() const { return object_; }

 private:
  Status Truncate() {
    if (ftruncate(fd_, 0) != 0 || lseek(fd_, 0, SEEK_SET) != 0) {
      return Status::IoError("cannot truncate '" + path_ + "': " + Errno(errno));
    }
    written_ = 0;
    return Status::OK();
  }

  int fd_;
  std::string path_;
  int64_t written_ = 0;
  int64_t total_ = -1;
  std::string etag_;
  S3Object object_;
  bool resuming_ = false;
  bool restart_ = false;
};

class FileCloser {
 public:
  explicit FileCloser(int fd) : fd_(fd) {}
  ~FileCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;
  /// Closes now, reporting the error close() may give for buffered writes.
  int Close() {
    int rc = close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

class ListerImpl : public S3Client::Lister {
 public:
  ListerImpl(const S3Client::Impl* client, std::string bucket, std::string prefix, int max_keys)
      : client_(client), bucket_(std::move(bucket)), prefix_(std::move(prefix)), max_keys_(max_keys) {}

  Result<std::optional<std::vector<S3Object>>> NextPage() override {
    if (done_) return std::optional<std::vector<S3Object>>();
    Request req;
    req.method = "GET";
    req.bucket = bucket_;
    req.query = {{"list-type", "2"}, {"max-keys", std::to_string(max_keys_)}, {"encoding-type", "url"}};
    if (!prefix_.empty()) req.query.emplace_back("prefix", prefix_);
    if (!token_.empty()) req.query.emplace_back("continuation-token", token_);
    Response response;
    Status s = client_->Execute(&req, nullptr, &response);
    if (!s.ok()) return RenameWhere(s);
    Result<ListObjectsPage> page = ParseListObjectsV2(response.body);
    if (!page.ok()) return page.status().WithContext(S3UrlString(bucket_, prefix_) + ": listing");
    if (page->is_truncated) {
      if (page->next_continuation_token.empty() || page->next_continuation_token == token_) {
        return Status::DataError(S3UrlString(bucket_, prefix_) +
                                 ": the listing is truncated but gives no new continuation token");
      }
      token_ = page->next_continuation_token;
    } else {
      done_ = true;
    }
    return std::optional<std::vector<S3Object>>(std::move(page->objects));
  }

 private:
  // Errors name the listed prefix, not just the bucket.
  Status RenameWhere(const Status& s) const {
    if (prefix_.empty()) return s;
    std::string bucket_url = S3UrlString(bucket_, "");
    std::string message = s.message();
    if (message.rfind(bucket_url + ":", 0) == 0) {
      message = S3UrlString(bucket_, prefix_) + message.substr(bucket_url.size());
    }
    return Status(s.code(), message, s.retryable());
  }

  const S3Client::Impl* client_;
  std::string bucket_;
  std::string prefix_;
  int max_keys_;
  std::string token_;
  bool done_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------

S3Client::S3Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Client::~S3Client() = default;

Result<std::unique_ptr<S3Client>> S3Client::Make(S3Options options) {
  InitCurlOnce();
  if (options.region.empty()) options.region = "us-east-1";
  if (options.connect_timeout_ms <= 0)
    return Status::InvalidArgument("S3 connect_timeout_ms must be positive");
  if (options.stall_timeout_ms <= 0) return Status::InvalidArgument("S3 stall_timeout_ms must be positive");
  if (options.access_key_id.empty() != options.secret_access_key.empty()) {
    return Status::InvalidArgument("S3 access_key_id and secret_access_key must be given together");
  }
  std::string endpoint_url = options.endpoint;
  if (endpoint_url.empty()) {
    bool china = options.region.rfind("cn-", 0) == 0;
    endpoint_url = "https://s3." + options.region + (china ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  SLUICE_ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(endpoint_url));
  if (!options.path_style.has_value()) options.path_style = !options.endpoint.empty();
  return std::unique_ptr<S3Client>(
      new S3Client(std::make_unique<Impl>(std::move(options), std::move(endpoint))));
}

const S3Options& S3Client::options() const { return impl_->options(); }
S3ClientStats S3Client::stats() const { return impl_->stats(); }

std::unique_ptr<S3Client::Lister> S3Client::List(const std::string& bucket, const std::string& prefix,
                                                 int max_keys) const {
  return std::make_unique<ListerImpl>(impl_.get(), bucket, prefix, std::clamp(max_keys, 1, 1000));
}

Result<S3Object> S3Client::Head(const std::string& bucket, const std::string& key) const {
  Request req;
  req.method = "HEAD";
  req.bucket = bucket;
  req.key = key;
  Response response;
  SLUICE_RETURN_IF_ERROR(impl_->Execute(&req, nullptr, &response));
  return ObjectFromHeaders(key, response);
}

Result<std::string> S3Client::GetRange(const std::string& bucket, const std::string& key, int64_t offset,
                                       int64_t length) const {
  if (offset < 0 || length < 0) {
    return Status::InvalidArgument(S3UrlString(bucket, key) + ": bad range offset " + std::to_string(offset) +
                                   " length " + std::to_string(length));
  }
  if (length == 0) return std::string();
  Request req;
  req.method = "GET";
  req.bucket = bucket;
  req.key = key;
  req.SetHeader("Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  RangeSink sink(offset, length);
  SLUICE_RETURN_IF_ERROR(impl_->Execute(&req, &sink, nullptr));
  return sink.Take();
}

Result<S3Object> S3Client::Download(const std::string& bucket, const std::string& key,
                                    const std::string& local_path) const {
  std::string where = S3UrlString(bucket, key);
  std::string temp_path;
  int fd = -1;
  for (int i = 0; i < 10 && fd < 0; ++i) {
    temp_path = local_path + ".sluice-part-" + RandomSuffix();
    fd = open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) {
      return Status::IoError(where + ": cannot create '" + temp_path + "': " + Errno(errno));
    }
  }
  if (fd < 0) return Status::IoError(where + ": cannot create a temporary file next to '" + local_path + "'");
  FileCloser closer(fd);
  auto fail = [&](Status s) {
    unlink(temp_path.c_str());
    return s;
  };

  FileSink sink(fd, temp_path);
  Request req;
  req.method = "GET";
  req.bucket = bucket;
  req.key = key;
  req.reset_backoff_on_progress = true;
  auto before = [&](Request* r) { return sink.Prepare(r); };
  auto judge = [&](const Request& r, const Attempt& a) -> std::optional<Verdict> {
    if (a.cancelled || !a.sink_status.ok() || a.curl != CURLE_OK) return std::nullopt;
    if (sink.resuming() && a.response.status == 412) {
      // If-Match failed: the object was replaced. Start over.
      sink.RestartNextTime();
      return Verdict{Outcome::kRetry,
                     Status::Unavailable(where + ": the object changed during the download; starting over"),
                     std::nullopt};
    }
    if (sink.resuming() && a.response.status == 416) {
      // Everything had arrived before the connection broke, or the object
      // became shorter (servers that ignore If-Match).
      if (sink.written() == sink.total()) return Verdict{};
      sink.RestartNextTime();
      return Verdict{Outcome::kRetry,
                     Status::Unavailable(where + ": the object changed during the download; starting over"),
                     std::nullopt};
    }
    if (a.response.status / 100 == 2 && sink.total() >= 0 && sink.written() != sink.total()) {
      return Verdict{Outcome::kRetry,
                     Status::Unavailable(impl_->Where(r) + ": got " + std::to_string(sink.written()) +
                                         " of " + std::to_string(sink.total()) + " bytes"),
                     std::nullopt};
    }
    return std::nullopt;
  };
  Status s = impl_->Execute(&req, &sink, nullptr, before, judge);
  if (!s.ok()) return fail(s);
  if (closer.Close() != 0)
    return fail(Status::IoError(where + ": cannot write '" + temp_path + "': " + Errno(errno)));
  if (rename(temp_path.c_str(), local_path.c_str()) != 0) {
    return fail(Status::IoError(where + ": cannot rename '" + temp_path + "' to '" + local_path +
                                "': " + Errno(errno)));
  }
  S3Object object = sink.object();
  object.key = key;
  object.etag = sink.etag();
  object.size = sink.written();
  return object;
}

Status S3Client::PutObject(const std::string& bucket, const std::string& key, std::string_view body) const {
  MemoryBody source(body);
  Request req;
  req.method = "PUT";
  req.bucket = bucket;
  req.key = key;
  req.body = &source;
  req.payload_hash = Sha256Hex(body);
  return impl_->Execute(&req, nullptr, nullptr);
}

Status S3Client::Upload(const std::string& bucket, const std::string& key, const std::string& local_path,
                        int64_t part_size) const {
  std::string where = S3UrlString(bucket, key);
  if (part_size < kMinPartSize || part_size > kMaxPartSize) {
    return Status::InvalidArgument(where + ": part size " + std::to_string(part_size) +
                                   " is outside S3's limits of 5 MiB to 5 GiB");
  }
  int fd = open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(where + ": cannot open '" + local_path + "': " + Errno(errno));
  FileCloser closer(fd);
  struct stat st;
  if (fstat(fd, &st) != 0)
    return Status::IoError(where + ": cannot stat '" + local_path + "': " + Errno(errno));
  const int64_t size = st.st_size;
  if (size > part_size * kMaxParts) {
    constexpr int64_t kMiB = 1 << 20;
    part_size = ((size + kMaxParts - 1) / kMaxParts + kMiB - 1) / kMiB * kMiB;
  }

  if (size <= part_size) {
    FileRegionBody body(fd, local_path, 0, size);
    Request req;
    req.method = "PUT";
    req.bucket = bucket;
    req.key = key;
    req.body = &body;
    SLUICE_ASSIGN_OR_RETURN(req.payload_hash, Sha256OfBody(&body));
    return impl_->Execute(&req, nullptr, nullptr);
  }

  // CreateMultipartUpload.
  Request create;
  create.method = "POST";
  create.bucket = bucket;
  create.key = key;
  create.query = {{"uploads", ""}};
  Response created;
  SLUICE_RETURN_IF_ERROR(impl_->Execute(&create, nullptr, &created));
  Result<std::string> upload_id = ParseInitiateMultipartUpload(created.body);
  if (!upload_id.ok()) return upload_id.status().WithContext(where + ": CreateMultipartUpload");

  auto abort_upload = [&](Status cause) {
    Request abort;
    abort.method = "DELETE";
    abort.bucket = bucket;
    abort.key = key;
    abort.query = {{"uploadId", *upload_id}};
    abort.ignore_cancel = true;
    (void)impl_->Execute(&abort, nullptr, nullptr);  // best effort; the cause is what matters
    return cause;
  };

  std::vector<std::pair<int, std::string>> parts;
  for (int64_t offset = 0, number = 1; offset < size; offset += part_size, ++number) {
    FileRegionBody body(fd, local_path, offset, std::min(part_size, size - offset));
    Request part;
    part.method = "PUT";
    part.bucket = bucket;
    part.key = key;
    part.query = {{"partNumber", std::to_string(number)}, {"uploadId", *upload_id}};
    part.body = &body;
    Result<std::string> hash = Sha256OfBody(&body);
    if (!hash.ok()) return abort_upload(hash.status().WithContext(where));
    part.payload_hash = *hash;
    Response uploaded;
    Status s = impl_->Execute(&part, nullptr, &uploaded);
    if (!s.ok()) return abort_upload(s.WithContext("part " + std::to_string(number)));
    std::string etag = StripQuotes(uploaded.Header("etag").value_or(""));
    if (etag.empty()) {
      return abort_upload(
          Status::DataError(where + ": UploadPart " + std::to_string(number) + " gave no ETag"));
    }
    parts.emplace_back(static_cast<int>(number), etag);
  }

  // CompleteMultipartUpload. S3 may answer 200 and still fail, with an
  // <Error> document as the body.
  std::string xml = CompleteMultipartUploadXml(parts);
  MemoryBody body(xml);
  Request complete;
  complete.method = "POST";
  complete.bucket = bucket;
  complete.key = key;
  complete.query = {{"uploadId", *upload_id}};
  complete.SetHeader("Content-Type", "application/xml");
  complete.body = &body;
  complete.payload_hash = Sha256Hex(xml);
  auto judge = [&](const Request& r, const Attempt& a) -> std::optional<Verdict> {
    if (a.curl != CURLE_OK || a.response.status / 100 != 2) return std::nullopt;
    S3ErrorInfo info = ParseS3Error(a.response.body);
    if (info.code.empty()) return std::nullopt;
    std::string text = impl_->Where(r) + ": CompleteMultipartUpload: " + info.code + ": " + info.message;
    bool retry = info.code == "InternalError" || info.code == "SlowDown" || info.code == "ServiceUnavailable";
    return Verdict{retry ? Outcome::kRetry : Outcome::kFail,
                   retry ? Status::Unavailable(text) : Status::InvalidArgument(text), std::nullopt};
  };
  Status s = impl_->Execute(&complete, nullptr, nullptr, nullptr, judge);
  if (!s.ok()) return abort_upload(s);
  return Status::OK();
}

Status S3Client::DeleteObject(const std::string& bucket, const std::string& key) const {
  Request req;
  req.method = "DELETE";
  req.bucket = bucket;
  req.key = key;
  return impl_->Execute(&req, nullptr, nullptr);
}

Status S3Client::CreateBucket(const std::string& bucket) const {
  Request req;
  req.method = "PUT";
  req.bucket = bucket;
  // us-east-1 is the default location and must not be named.
  std::string xml;
  if (impl_->options().region != "us-east-1") {
    xml =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>" +
        XmlEscape(impl_->options().region) + "</LocationConstraint></CreateBucketConfiguration>";
    req.SetHeader("Content-Type", "application/xml");
  }
  MemoryBody body(xml);
  req.body = &body;
  req.payload_hash = Sha256Hex(xml);
  auto judge = [](const Request&, const Attempt& a) -> std::optional<Verdict> {
    if (a.curl == CURLE_OK && a.response.status == 409 &&
        ParseS3Error(a.response.body).code == "BucketAlreadyOwnedByYou") {
      return Verdict{};
    }
    return std::nullopt;
  };
  return impl_->Execute(&req, nullptr, nullptr, nullptr, judge);
}

Status CheckDownloadedSize(const std::string& where, const S3Object& got, int64_t listed_size,
                           const std::string& listed_etag) {
  if (listed_etag.empty() || got.etag != listed_etag || got.size == listed_size) return Status::OK();
  return Status::Unavailable(where + ": downloaded " + std::to_string(got.size) +
                             " bytes, but the listing says " + std::to_string(listed_size) +
                             " for the same ETag " + listed_etag + "; the download is incomplete");
}

}  // namespace sluice::io
