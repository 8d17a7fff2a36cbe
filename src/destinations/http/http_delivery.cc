#include "destinations/http/http_delivery.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>

#include "core/human_format.h"
#include "core/redact.h"

namespace sluice::destinations {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool IsToken(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) return false;
  }
  return true;
}

}  // namespace

Result<HttpSendOptions> ReadHttpSendOptions(const ConfigTable& t, bool cdc) {
  HttpSendOptions o;
  o.url = t.GetString("url");
  std::string method = t.GetString("method", "POST");
  std::transform(method.begin(), method.end(), method.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (method == "POST" || method == "PUT") {
    o.method = method;
  } else {
    t.Fail("method", "must be \"POST\" or \"PUT\"");
  }
  std::string format = t.GetString("format", "json");
  if (format == "json") {
    o.format = BodyFormat::kJson;
  } else if (format == "jsonl" || format == "ndjson") {
    o.format = BodyFormat::kJsonLines;
  } else {
    t.Fail("format",
           "must be \"json\" (one JSON array per request) or \"jsonl\" (alias \"ndjson\": one object "
           "per line)");
  }
  std::string decimals = t.GetString("decimals", "number");
  if (decimals == "number") {
    o.decimals = DecimalFormat::kNumber;
  } else if (decimals == "string") {
    o.decimals = DecimalFormat::kString;
  } else {
    t.Fail("decimals", "must be \"number\" or \"string\"");
  }
  for (auto& [name, value] : t.GetStringMap("headers")) {
    std::string lower = Lower(name);
    if (!IsToken(name)) {
      t.Fail("headers", "." + name + " is not a valid header name");
    } else if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      t.Fail("headers", "." + name + " must not contain line breaks");
    } else if (lower == "idempotency-key" || lower == "content-length") {
      t.Fail("headers", "." + name + " is set by sluice");
    } else {
      o.headers.emplace_back(name, value);
    }
  }
  o.max_rows = t.GetInt("max_rows", o.max_rows);
  if (o.max_rows < 1) t.Fail("max_rows", "must be at least 1");
  o.max_bytes = t.GetBytes("max_bytes", o.max_bytes);
  if (o.max_bytes < 1) t.Fail("max_bytes", "must be at least 1 byte");
  if (!cdc) {
    int64_t concurrency = t.GetInt("concurrency", o.concurrency);
    if (concurrency < 1 || concurrency > 4096) t.Fail("concurrency", "must be between 1 and 4096");
    o.concurrency = static_cast<int>(std::clamp<int64_t>(concurrency, 1, 4096));
  }
  o.timeout = std::chrono::milliseconds(t.GetMillis("timeout", o.timeout.count()));
  o.dead_letter = t.GetString("dead_letter");
  if (t.Has("retry")) {
    // Only [destination.retry]: the file's own [retry] (re-running a whole
    // load) means something else.
    const ConfigTable& r = t.Section("retry");
    int64_t attempts = r.GetInt("max_attempts", o.retry.max_attempts);
    if (attempts < 1 || attempts > 1000) r.Fail("max_attempts", "must be between 1 and 1000");
    o.retry.max_attempts = static_cast<int>(std::clamp<int64_t>(attempts, 1, 1000));
    o.retry.initial = std::chrono::milliseconds(r.GetMillis("initial", o.retry.initial.count()));
    o.retry.max_delay = std::chrono::milliseconds(r.GetMillis("max_delay", o.retry.max_delay.count()));
    o.retry.max_elapsed = std::chrono::milliseconds(r.GetMillis("max_elapsed", o.retry.max_elapsed.count()));
  }
  o.pipeline = t.PipelineName();
  SLUICE_RETURN_IF_ERROR(t.Check());
  SLUICE_RETURN_IF_ERROR(CheckHttpUrl(o.url, t.Name() + " url"));
  if (!cdc && o.url.find("{table}") != std::string::npos) {
    return Status::InvalidArgument(
        t.Name() + " url " + io::RedactHttpUrl(o.url) +
        ": {table} names the source table of change data capture pipelines; a batch "
        "pipeline sends every row to one URL");
  }
  return o;
}

std::string DescribeHttp(const HttpSendOptions& options) {
  return "http " + options.method + " " + io::RedactHttpUrl(options.url);
}

// ---------------------------------------------------------------------------
// Dead-letter file

class HttpDelivery::DeadLetterFile {
 public:
  explicit DeadLetterFile(std::string path) : path_(std::move(path)) {}
  ~DeadLetterFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  /// Appends one line standing for a request of `items` rows or events.
  Status Append(const std::string& line, int64_t items) {
    std::lock_guard lock(mu_);
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0)
        return Status::IoError("cannot open dead_letter file " + path_ + ": " + std::strerror(errno));
      new_file_ = true;
    }
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::IoError("writing dead_letter file " + path_ + ": " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    dirty_ = true;
    items_ += items;
    ++requests_;
    return Status::OK();
  }

  /// Makes what was appended durable (and the file's name, when new).
  Status Sync() {
    std::lock_guard lock(mu_);
    if (!dirty_) return Status::OK();
    if (::fsync(fd_) != 0) return Status::IoError("fsync " + path_ + ": " + std::strerror(errno));
    if (new_file_) {
      std::filesystem::path dir = std::filesystem::path(path_).parent_path();
      int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
      }
      new_file_ = false;
    }
    dirty_ = false;
    return Status::OK();
  }

  int64_t items() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  int64_t requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  std::string path_;
  int fd_ = -1;
  bool dirty_ = false;
  bool new_file_ = false;
  int64_t items_ = 0;
  int64_t requests_ = 0;
};

// ---------------------------------------------------------------------------
// HttpDelivery

struct HttpDelivery::Shared {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::map<std::string, int> lanes;  // requests in flight per lane
  bool interrupted = false;
};

struct HttpDelivery::Failure {
  io::HttpResponse response;
  OutgoingRequest request;  // its body only when there is a dead-letter file
};

struct HttpDelivery::Group::State {
  int in_flight = 0;
  std::deque<Failure> failures;  // completed, not yet handled
  Status error;
  uint32_t error_table = 0;
  int64_t accepted = 0;
  bool dead_lettered = false;
};

HttpDelivery::HttpDelivery(HttpSendOptions options, int window)
    : options_(std::move(options)), window_(std::max(1, window)), shared_(std::make_shared<Shared>()) {
  bool has_content_type = false;
  for (const auto& [name, value] : options_.headers) {
    if (Lower(name) == "content-type") has_content_type = true;
    header_lines_.push_back(name + ": " + value);
  }
  if (!has_content_type) {
    header_lines_.insert(header_lines_.begin(),
                         std::string("Content-Type: ") + ContentTypeOf(options_.format));
  }
  if (!options_.dead_letter.empty()) dead_letter_ = std::make_unique<DeadLetterFile>(options_.dead_letter);
}

Result<std::unique_ptr<HttpDelivery>> HttpDelivery::Make(HttpSendOptions options, int window) {
  std::unique_ptr<HttpDelivery> delivery(new HttpDelivery(std::move(options), window));
  io::HttpClientOptions client;
  client.max_in_flight = delivery->window_;
  client.max_per_host = delivery->window_;
  SLUICE_ASSIGN_OR_RETURN(delivery->client_, io::HttpClient::Make(std::move(client)));
  return delivery;
}

HttpDelivery::~HttpDelivery() = default;

void HttpDelivery::Interrupt() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->interrupted = true;
    shared_->cv.notify_all();
  }
  client_->Cancel();
}

void HttpDelivery::CancelInFlight() { client_->Cancel(); }

int64_t HttpDelivery::dead_lettered_items() const { return dead_letter_ ? dead_letter_->items() : 0; }
int64_t HttpDelivery::dead_lettered_requests() const { return dead_letter_ ? dead_letter_->requests() : 0; }

Status HttpDelivery::Handle(const Failure& failure, bool* dead_lettered) {
  const io::HttpResponse& r = failure.response;
  const OutgoingRequest& request = failure.request;
  std::string where = "http " + options_.method + " " + io::RedactHttpUrl(request.url) + ": " + request.what;
  if (r.cancelled) return Status::Cancelled(where + ": cancelled");
  // A server may echo what it was sent: keep header values (tokens) out
  // of what sluice writes down.
  std::string response = r.body;
  for (const auto& [name, value] : options_.headers) {
    if (value.size() >= 6) response = RedactSecret(std::move(response), value);
    size_t space = value.rfind(' ');
    if (space != std::string::npos && value.size() - space > 6) {
      response = RedactSecret(std::move(response), value.substr(space + 1));
    }
  }
  std::string error = r.Summary();
  if (r.attempts > 1) error += " after " + std::to_string(r.attempts) + " attempts";
  if (dead_letter_) {
    DeadLetterEntry entry;
    entry.time = Iso8601(std::chrono::system_clock::now());
    entry.url = io::RedactHttpUrl(request.url);
    entry.status = r.status;
    entry.response = response;
    entry.error = error;
    entry.idempotency_key = request.idempotency_key;
    entry.format = options_.format;
    entry.body = request.body;
    SLUICE_RETURN_IF_ERROR(dead_letter_->Append(DeadLetterLine(entry), request.items));
    *dead_lettered = true;
    return Status::OK();
  }
  bool retryable = io::HttpRetryable(r);
  std::string message = where + (retryable ? " failed: " : " was refused: ") + error;
  std::string excerpt(Utf8Prefix(response, 300));
  for (char& c : excerpt) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (!excerpt.empty()) message += ": " + excerpt + (excerpt.size() < response.size() ? "..." : "");
  message += " (with dead_letter set, such requests are set aside and the pipeline goes on)";
  return retryable ? Status::Unavailable(message) : Status::DataError(message);
}

// ---------------------------------------------------------------------------
// Group

HttpDelivery::Group::Group(HttpDelivery* delivery) : delivery_(delivery), state_(std::make_shared<State>()) {}

HttpDelivery::Group::~Group() {
  std::unique_lock lock(delivery_->shared_->mu);
  delivery_->shared_->cv.wait(lock, [&] { return state_->in_flight == 0; });
}

uint32_t HttpDelivery::Group::error_table() const {
  std::lock_guard lock(delivery_->shared_->mu);
  return state_->error_table;
}

int64_t HttpDelivery::Group::accepted() const {
  std::lock_guard lock(delivery_->shared_->mu);
  return state_->accepted;
}

void HttpDelivery::Group::HandleFailures(std::unique_lock<std::mutex>& lock) {
  while (!state_->failures.empty()) {
    Failure failure = std::move(state_->failures.front());
    state_->failures.pop_front();
    lock.unlock();
    bool dead_lettered = false;
    Status handled = delivery_->Handle(failure, &dead_lettered);
    lock.lock();
    if (dead_lettered) state_->dead_lettered = true;
    if (!handled.ok() && state_->error.ok()) {
      state_->error = handled;
      state_->error_table = failure.request.table_id;
    }
  }
}

Status HttpDelivery::Group::Send(OutgoingRequest request, const std::string& lane) {
  HttpDelivery& d = *delivery_;
  Shared& shared = *d.shared_;
  {
    std::unique_lock lock(shared.mu);
    while (true) {
      HandleFailures(lock);
      if (!state_->error.ok()) return state_->error;
      if (shared.interrupted) return Status::Cancelled(DescribeHttp(d.options_) + ": interrupted");
      bool lane_free = lane.empty() || shared.lanes[lane] == 0;
      if (shared.in_flight < d.window_ && lane_free) break;
      shared.cv.wait(lock);
    }
    ++shared.in_flight;
    if (!lane.empty()) ++shared.lanes[lane];
    ++state_->in_flight;
  }
  io::HttpRequest http;
  http.method = d.options_.method;
  http.url = request.url;
  http.headers = d.header_lines_;
  http.headers.push_back("Idempotency-Key: " + request.idempotency_key);
  http.timeout = d.options_.timeout;
  // Only an excerpt is kept, but a receiver that accepted the rows and
  // answers with a large body must not look like a refusal.
  http.max_response_bytes = int64_t{64} << 20;
  // The body is needed again only to dead-letter it.
  if (d.dead_letter_) {
    http.body = request.body;
  } else {
    http.body = std::move(request.body);
    request.body.clear();
  }
  auto kept = std::make_shared<OutgoingRequest>(std::move(request));
  d.client_->Submit(std::move(http), d.options_.retry,
                    [shared = d.shared_, state = state_, lane, kept](io::HttpResponse response) {
                      std::lock_guard lock(shared->mu);
                      --shared->in_flight;
                      if (!lane.empty() && --shared->lanes[lane] == 0) shared->lanes.erase(lane);
                      --state->in_flight;
                      if (response.ok()) {
                        ++state->accepted;
                      } else {
                        state->failures.push_back(Failure{std::move(response), std::move(*kept)});
                      }
                      shared->cv.notify_all();
                    });
  return Status::OK();
}

Status HttpDelivery::Group::Wait() {
  Shared& shared = *delivery_->shared_;
  std::unique_lock lock(shared.mu);
  while (true) {
    HandleFailures(lock);
    if (state_->in_flight == 0 && state_->failures.empty()) break;
    shared.cv.wait(lock);
  }
  Status error = state_->error;
  bool dead_lettered = state_->dead_lettered;
  state_->dead_lettered = false;
  lock.unlock();
  if (dead_lettered && delivery_->dead_letter_) {
    Status synced = delivery_->dead_letter_->Sync();
    if (!synced.ok() && error.ok()) error = synced;
  }
  return error;
}

}  // namespace sluice::destinations
