#include "io/http/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <unordered_set>

#include "core/human_format.h"
#include "core/redact.h"

namespace sluice::io {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string SecondsText(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

void EnsureCurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  std::string lower = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == lower) return v;
  }
  return std::nullopt;
}

std::string HttpResponse::Summary() const {
  if (cancelled) return "cancelled";
  if (status != 0 && error.empty()) return "HTTP " + std::to_string(status);
  if (status != 0) return "HTTP " + std::to_string(status) + " (" + error + ")";
  return error.empty() ? "no response" : error;
}

bool HttpRetryable(const HttpResponse& response) {
  if (response.cancelled || response.too_large) return false;
  if (response.status == 0) return true;  // timeout, refused, reset, cut mid-body
  long s = response.status;
  return s == 408 || s == 429 || (s >= 500 && s <= 599 && s != 501);
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::chrono::milliseconds(int64_t{999999999} * 1000);
    return std::chrono::milliseconds(std::stoll(std::string(value)) * 1000);
  }
  // An HTTP date: curl_getdate reads the IMF-fixdate, RFC 850 and asctime
  // forms that RFC 9110 allows. It wants a letter first (a day name).
  if (!std::isalpha(static_cast<unsigned char>(value.front()))) return std::nullopt;
  time_t when = curl_getdate(std::string(value).c_str(), nullptr);
  if (when < 0) return std::nullopt;
  auto target = std::chrono::system_clock::from_time_t(when);
  if (target <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(target - now);
}

std::chrono::milliseconds HttpRetryDelay(const HttpRetryPolicy& policy, int attempt,
                                         const HttpResponse& response, double uniform01) {
  if (auto header = response.Header("retry-after")) {
    if (auto asked = ParseRetryAfter(*header, std::chrono::system_clock::now())) {
      return std::min(*asked, policy.max_delay);
    }
  }
  double cap = static_cast<double>(policy.initial.count()) * std::pow(2.0, std::max(0, attempt - 1));
  cap = std::min(cap, static_cast<double>(policy.max_delay.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(cap * std::clamp(uniform01, 0.0, 1.0)));
}

std::string RedactHttpUrl(std::string_view url) {
  std::string out(url);
  if (size_t scheme = UrlSchemeLength(out); scheme > 0) {
    if (auto info = UrlUserInfo(out)) {
      size_t start = static_cast<size_t>(info->data() - out.data());
      size_t len = info->size();
      size_t colon = info->find(':');
      if (colon != std::string_view::npos) {
        out.replace(start + colon + 1, len - colon - 1, "***");
      } else if (len > 0) {
        out.replace(start, len, "***");  // a bare token as the user name
      }
    }
  }
  size_t q = out.find('?');
  if (q == std::string::npos) return out;
  size_t end = out.find('#', q);
  if (end == std::string::npos) end = out.size();
  static const std::unordered_set<std::string> kSecret = {"api_key",          "apikey",
                                                          "api-key",          "token",
                                                          "access_token",     "key",
                                                          "signature",        "sig",
                                                          "password",         "secret",
                                                          "client_secret",    "x-amz-signature",
                                                          "x-amz-credential", "x-amz-security-token"};
  std::string rebuilt = out.substr(0, q + 1);
  size_t pos = q + 1;
  while (pos <= end) {
    size_t amp = out.find('&', pos);
    if (amp == std::string::npos || amp > end) amp = end;
    std::string_view param(out.data() + pos, amp - pos);
    size_t eq = param.find('=');
    std::string name = Lower(PercentDecode(param.substr(0, eq)));
    if (eq != std::string_view::npos && kSecret.count(name) > 0) {
      rebuilt.append(param.substr(0, eq + 1)).append("***");
    } else {
      rebuilt.append(param);
    }
    if (amp < end) rebuilt.push_back('&');
    pos = amp + 1;
  }
  rebuilt.append(out, end, std::string::npos);
  return rebuilt;
}

// ---------------------------------------------------------------------------

struct HttpClient::Impl {
  struct Transfer {
    HttpRequest request;
    HttpRetryPolicy policy;
    Callback done;
    HttpResponse response;
    Clock::time_point first_start{};
    Clock::time_point attempt_start{};
    Clock::time_point due{};  // when a delayed retry may start
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    char error_buffer[CURL_ERROR_SIZE] = {};
  };
  struct LaterFirst {
    bool operator()(const Transfer* a, const Transfer* b) const { return a->due > b->due; }
  };

  HttpClientOptions options;
  CURLM* multi = nullptr;
  std::thread thread;

  mutable std::mutex mu;
  std::deque<Transfer*> submitted;  // guarded by mu
  bool stop = false;                // guarded by mu
  bool cancel_requested = false;    // guarded by mu
  std::atomic<int64_t> pending{0};

  // Owned by the client's thread.
  std::deque<Transfer*> waiting;  // ready to start, beyond max_in_flight
  std::priority_queue<Transfer*, std::vector<Transfer*>, LaterFirst> delayed;
  std::vector<CURL*> idle_handles;
  int running = 0;
  std::mt19937_64 rng{std::random_device{}()};

  ~Impl() {
    for (CURL* easy : idle_handles) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t bytes = size * n;
    if (static_cast<int64_t>(t->response.body.size() + bytes) > t->request.max_response_bytes) {
      t->response.too_large = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    t->response.body.append(data, bytes);
    return bytes;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t bytes = size * n;
    std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
      t->response.headers.clear();  // a new response (after 100 Continue or a redirect)
      return bytes;
    }
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      t->response.headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                                       std::string(Trim(line.substr(colon + 1))));
    }
    return bytes;
  }

  void Start(Transfer* t) {
    CURL* easy = nullptr;
    if (!idle_handles.empty()) {
      easy = idle_handles.back();
      idle_handles.pop_back();
      curl_easy_reset(easy);
    } else {
      easy = curl_easy_init();
    }
    t->easy = easy;
    int attempts = t->response.attempts;
    t->response = HttpResponse{};
    t->response.attempts = attempts + 1;
    t->attempt_start = Clock::now();
    if (attempts == 0) t->first_start = t->attempt_start;
    t->error_buffer[0] = '\0';

    const HttpRequest& r = t->request;
    curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error_buffer);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(r.timeout.count(), 10000)));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Impl::OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, options.user_agent.c_str());
    // Redirects are followed for reads only: libcurl would turn a POST
    // into a bodiless GET on 301/302/303, and the receiver's 200 would then
    // count rows as delivered that never arrived. A 3xx to a POST is final.
    if (r.method == "GET" || r.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
      curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_response_bytes));
    if (t->headers == nullptr) {
      for (const std::string& h : r.headers) t->headers = curl_slist_append(t->headers, h.c_str());
      // No "Expect: 100-continue" round trip before a body.
      t->headers = curl_slist_append(t->headers, "Expect:");
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    if (r.method == "GET") {
      curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (r.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else {
      if (r.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    }
    curl_multi_add_handle(multi, easy);
    ++running;
  }

  void Release(Transfer* t) {
    if (t->easy != nullptr) {
      curl_multi_remove_handle(multi, t->easy);
      idle_handles.push_back(t->easy);
      t->easy = nullptr;
      --running;
    }
  }

  void Complete(Transfer* t) {
    if (t->headers != nullptr) curl_slist_free_all(t->headers);
    t->headers = nullptr;
    t->response.total_seconds = std::chrono::duration<double>(Clock::now() - t->first_start).count();
    Callback done = std::move(t->done);
    HttpResponse response = std::move(t->response);
    delete t;
    pending.fetch_sub(1, std::memory_order_acq_rel);
    if (done) done(std::move(response));
  }

  void CompleteCancelled(Transfer* t) {
    Release(t);
    t->response.cancelled = true;
    t->response.error = "cancelled";
    Complete(t);
  }

  void Finished(Transfer* t, CURLcode code) {
    long status = 0;
    if (code == CURLE_OK) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    Release(t);
    HttpResponse& resp = t->response;
    resp.seconds = std::chrono::duration<double>(Clock::now() - t->attempt_start).count();
    if (code == CURLE_OK) {
      resp.status = status;
    } else {
      resp.status = 0;
      if (resp.too_large || code == CURLE_FILESIZE_EXCEEDED) {
        resp.too_large = true;
        resp.error = "response larger than " + HumanBytes(static_cast<double>(t->request.max_response_bytes));
      } else if (code == CURLE_OPERATION_TIMEDOUT) {
        resp.timed_out = true;
        resp.error = "timed out after " + SecondsText(t->request.timeout);
      } else {
        resp.error = t->error_buffer[0] != '\0' ? std::string(t->error_buffer) : curl_easy_strerror(code);
      }
      resp.body.clear();
      resp.headers.clear();
    }
    if (options.on_attempt) options.on_attempt(t->request, resp);
    if (HttpRetryable(resp) && resp.attempts < t->policy.max_attempts) {
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      auto delay = HttpRetryDelay(t->policy, resp.attempts, resp, uniform(rng));
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t->first_start);
      if (elapsed + delay <= t->policy.max_elapsed) {
        t->due = Clock::now() + delay;
        delayed.push(t);
        return;
      }
    }
    Complete(t);
  }

  bool Cancelled() const { return options.cancel != nullptr && options.cancel->cancelled(); }

  void CancelEverything(std::deque<Transfer*>& fresh) {
    std::vector<Transfer*> active;
    active.swap(running_set);
    for (Transfer* t : active) CompleteCancelled(t);
    while (!waiting.empty()) {
      Transfer* t = waiting.front();
      waiting.pop_front();
      CompleteCancelled(t);
    }
    while (!delayed.empty()) {
      Transfer* t = delayed.top();
      delayed.pop();
      CompleteCancelled(t);
    }
    for (Transfer* t : fresh) CompleteCancelled(t);
    fresh.clear();
  }

  std::vector<Transfer*> running_set;  // the transfers in the multi handle

  void Loop() {
    for (;;) {
      std::deque<Transfer*> fresh;
      bool stopping = false;
      bool cancel_now = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        fresh.swap(submitted);
        stopping = stop;
        cancel_now = cancel_requested;
        cancel_requested = false;
      }
      if (stopping || cancel_now || Cancelled()) {
        CancelEverything(fresh);
        if (stopping) return;
      }
      for (Transfer* t : fresh) waiting.push_back(t);
      auto now = Clock::now();
      while (!delayed.empty() && delayed.top()->due <= now) {
        // A retry goes before new requests: it is older.
        waiting.push_front(delayed.top());
        delayed.pop();
      }
      while (running < options.max_in_flight && !waiting.empty()) {
        Transfer* t = waiting.front();
        waiting.pop_front();
        Start(t);
        running_set.push_back(t);
      }
      int still = 0;
      curl_multi_perform(multi, &still);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
        CURLcode code = msg->data.result;
        running_set.erase(std::remove(running_set.begin(), running_set.end(), t), running_set.end());
        Finished(t, code);
      }
      int timeout_ms = 100;
      if (!delayed.empty()) {
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(delayed.top()->due - Clock::now());
        timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 100));
      }
      if (!waiting.empty() && running < options.max_in_flight) timeout_ms = 0;
      curl_multi_poll(multi, nullptr, 0, timeout_ms, nullptr);
    }
  }
};

Result<std::unique_ptr<HttpClient>> HttpClient::Make(HttpClientOptions options) {
  EnsureCurlGlobalInit();
  if (options.max_in_flight < 1)
    return Status::InvalidArgument("HTTP client: max_in_flight must be at least 1");
  if (options.max_per_host < 1)
    return Status::InvalidArgument("HTTP client: max_per_host must be at least 1");
  std::unique_ptr<HttpClient> client(new HttpClient());
  client->impl_ = std::make_unique<Impl>();
  Impl& impl = *client->impl_;
  impl.options = std::move(options);
  impl.multi = curl_multi_init();
  if (impl.multi == nullptr) return Status::Internal("curl_multi_init failed");
  curl_multi_setopt(impl.multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(impl.options.max_per_host));
  curl_multi_setopt(impl.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(impl.options.max_in_flight));
  curl_multi_setopt(impl.multi, CURLMOPT_MAXCONNECTS, static_cast<long>(impl.options.max_in_flight));
  curl_multi_setopt(impl.multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  impl.thread = std::thread([&impl] { impl.Loop(); });
  return client;
}

HttpClient::~HttpClient() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HttpClient::Submit(HttpRequest request, HttpRetryPolicy policy, Callback done) {
  auto* t = new Impl::Transfer();
  t->request = std::move(request);
  t->policy = policy;
  if (t->policy.max_attempts < 1) t->policy.max_attempts = 1;
  t->done = std::move(done);
  impl_->pending.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->submitted.push_back(t);
  }
  curl_multi_wakeup(impl_->multi);
}

HttpResponse HttpClient::Send(HttpRequest request, HttpRetryPolicy policy) {
  std::promise<HttpResponse> promise;
  auto future = promise.get_future();
  Submit(std::move(request), policy, [&promise](HttpResponse r) { promise.set_value(std::move(r)); });
  return future.get();
}

void HttpClient::Cancel() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cancel_requested = true;
  }
  curl_multi_wakeup(impl_->multi);
}

int64_t HttpClient::pending() const { return impl_->pending.load(std::memory_order_acquire); }

}  // namespace sluice::io
