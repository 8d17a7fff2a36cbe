#include "destinations/http/http_requests.h"

#include <algorithm>
#include <cctype>

#include "core/redact.h"
#include "destinations/http/json_rows.h"
#include "io/http/http_client.h"
#include "io/s3/sigv4.h"

namespace sluice::destinations {

const char* ContentTypeOf(BodyFormat format) {
  return format == BodyFormat::kJson ? "application/json" : "application/x-ndjson";
}

// ---------------------------------------------------------------------------
// RequestBody

RequestBody::RequestBody(BodyFormat format) : format_(format) {
  if (format_ == BodyFormat::kJson) content_ = "[";
}

int64_t RequestBody::bytes() const {
  return static_cast<int64_t>(content_.size()) + (format_ == BodyFormat::kJson ? 1 : 0);
}

int64_t RequestBody::BytesWith(int64_t item_bytes) const {
  // json: a comma before every item but the first; jsonl: a line break after each.
  int64_t separator = format_ == BodyFormat::kJson ? (items_ > 0 ? 1 : 0) : 1;
  return bytes() + separator + item_bytes;
}

int64_t RequestBody::BytesWith(const RequestBody& other) const {
  if (other.empty()) return bytes();
  if (empty()) return other.bytes();
  // json: "[a]" + "[b]" -> "[a,b]": the second's brackets become one comma.
  return format_ == BodyFormat::kJson ? bytes() + other.bytes() - 1 : bytes() + other.bytes();
}

void RequestBody::Append(std::string_view item) {
  if (format_ == BodyFormat::kJson) {
    if (items_ > 0) content_.push_back(',');
    content_.append(item);
  } else {
    content_.append(item);
    content_.push_back('\n');
  }
  ++items_;
}

void RequestBody::Append(const RequestBody& other) {
  if (other.empty()) return;
  if (format_ == BodyFormat::kJson) {
    if (items_ > 0) content_.push_back(',');
    content_.append(other.content_, 1, std::string::npos);
  } else {
    content_.append(other.content_);
  }
  items_ += other.items_;
}

std::string RequestBody::Take() {
  std::string body = std::move(content_);
  if (format_ == BodyFormat::kJson) body.push_back(']');
  content_.clear();
  if (format_ == BodyFormat::kJson) content_ = "[";
  items_ = 0;
  return body;
}

// ---------------------------------------------------------------------------
// RowRequestCutter

RowRequestCutter::RowRequestCutter(BodyFormat format, int64_t max_rows, int64_t max_bytes)
    : format_(format), max_rows_(std::max<int64_t>(1, max_rows)), max_bytes_(max_bytes), open_(format) {}

void RowRequestCutter::Add(std::string_view row, std::vector<RowRequest>* done) {
  if (!open_.empty() && open_.BytesWith(static_cast<int64_t>(row.size())) > max_bytes_) Close(done);
  open_.Append(row);
  // Full: no further row could join it (a row is never empty).
  if (open_.items() >= max_rows_ || open_.bytes() >= max_bytes_) Close(done);
}

void RowRequestCutter::Finish(std::vector<RowRequest>* done) {
  if (!open_.empty()) Close(done);
}

void RowRequestCutter::Close(std::vector<RowRequest>* done) {
  RowRequest request;
  request.number = next_number_++;
  request.rows = open_.items();
  request.body = open_.Take();
  done->push_back(std::move(request));
}

// ---------------------------------------------------------------------------
// EventRequestCutter

EventRequestCutter::EventRequestCutter(BodyFormat format, int64_t max_events, int64_t max_bytes,
                                       bool group_transactions)
    : format_(format),
      max_events_(std::max<int64_t>(1, max_events)),
      max_bytes_(max_bytes),
      group_transactions_(group_transactions),
      chunk_{RequestBody(format), 0, 0},
      group_{RequestBody(format), 0, 0} {}

void EventRequestCutter::Add(CdcLsn commit_lsn, std::string_view event, std::vector<EventRequest>* done) {
  if (!in_transaction_ || commit_lsn != commit_lsn_) {
    EndTransaction(done);
    in_transaction_ = true;
    commit_lsn_ = commit_lsn;
    index_ = 0;
    chunk_.commit_lsn = commit_lsn;
    chunk_.first_index = 0;
  }
  if (!chunk_.body.empty() && (chunk_.body.items() >= max_events_ ||
                               chunk_.body.BytesWith(static_cast<int64_t>(event.size())) > max_bytes_)) {
    // A fixed cut inside a large transaction: counted from its first
    // event, so it falls in the same place however the events arrived.
    Emit(&group_, done);
    Emit(&chunk_, done);
    chunk_.commit_lsn = commit_lsn_;
    chunk_.first_index = index_;
  }
  chunk_.body.Append(event);
  ++index_;
}

void EventRequestCutter::EndTransaction(std::vector<EventRequest>* done) {
  if (!in_transaction_) return;
  in_transaction_ = false;
  if (chunk_.body.empty()) return;
  if (!group_transactions_) {
    Emit(&chunk_, done);
    return;
  }
  if (!group_.body.empty() && group_.body.items() + chunk_.body.items() <= max_events_ &&
      group_.body.BytesWith(chunk_.body) <= max_bytes_) {
    group_.body.Append(chunk_.body);
    chunk_.body.Take();
    return;
  }
  Emit(&group_, done);
  std::swap(group_, chunk_);
}

void EventRequestCutter::Flush(std::vector<EventRequest>* done) {
  EndTransaction(done);
  Emit(&group_, done);
}

void EventRequestCutter::Reset() {
  in_transaction_ = false;
  index_ = 0;
  chunk_.body.Take();
  group_.body.Take();
}

void EventRequestCutter::Emit(Piece* piece, std::vector<EventRequest>* done) {
  if (piece->body.empty()) return;
  EventRequest request;
  request.commit_lsn = piece->commit_lsn;
  request.first_index = piece->first_index;
  request.events = piece->body.items();
  request.body = piece->body.Take();
  done->push_back(std::move(request));
}

// ---------------------------------------------------------------------------
// Keys

std::string IdempotencyKey(std::initializer_list<std::string_view> fields) {
  std::string input;
  for (std::string_view field : fields) {
    input += std::to_string(field.size());
    input.push_back(':');
    input.append(field);
  }
  return io::Sha256Hex(input);
}

std::string RowRequestKey(std::string_view pipeline, std::string_view input, int64_t number) {
  return IdempotencyKey({"sluice rows 1", pipeline, input, std::to_string(number)});
}

std::string EventRequestKey(std::string_view pipeline, std::string_view table, const EventRequest& request) {
  return IdempotencyKey({"sluice events 1", pipeline, table, CdcLsnToString(request.commit_lsn),
                         std::to_string(request.first_index), std::to_string(request.events)});
}

std::string CopyStartKey(std::string_view pipeline, std::string_view table, std::string_view copy_id) {
  return IdempotencyKey({"sluice copy_start 1", pipeline, table, copy_id});
}

std::string CopyChunkKey(std::string_view pipeline, std::string_view table, std::string_view copy_id,
                         int64_t chunk) {
  return IdempotencyKey({"sluice copy 1", pipeline, table, copy_id, std::to_string(chunk)});
}

// ---------------------------------------------------------------------------
// Dead letters

std::string BodyAsJsonArray(BodyFormat format, std::string_view body) {
  if (format == BodyFormat::kJson) return std::string(body);
  std::string out = "[";
  size_t pos = 0;
  bool first = true;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    if (end > pos) {
      if (!first) out.push_back(',');
      out.append(body.substr(pos, end - pos));
      first = false;
    }
    pos = end + 1;
  }
  out.push_back(']');
  return out;
}

std::string_view Utf8Prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Back off continuation bytes to the start of the sequence that is cut.
  size_t back = 0;
  while (end > 0 && back < 3 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
    ++back;
  }
  return text.substr(0, end);
}

std::string DeadLetterLine(const DeadLetterEntry& entry) {
  std::string line = "{\"time\":";
  AppendJsonString(entry.time, &line);
  line += ",\"url\":";
  AppendJsonString(entry.url, &line);
  line += ",\"status\":";
  line += entry.status == 0 ? "null" : std::to_string(entry.status);
  line += ",\"response\":";
  AppendJsonString(Utf8Prefix(entry.response, 1024), &line);
  line += ",\"error\":";
  AppendJsonString(entry.error, &line);
  line += ",\"idempotency_key\":";
  AppendJsonString(entry.idempotency_key, &line);
  line += ",\"rows\":";
  line += BodyAsJsonArray(entry.format, entry.body);
  line += "}\n";
  return line;
}

// ---------------------------------------------------------------------------
// URLs

Status CheckHttpUrl(const std::string& url, const std::string& key) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(key + " " + io::RedactHttpUrl(url) + ": " + why);
  };
  if (url.empty()) return Status::InvalidArgument(key + " is required");
  std::string lower = url.substr(0, 8);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t scheme_end;
  if (lower.starts_with("http://")) {
    scheme_end = 7;
  } else if (lower.starts_with("https://")) {
    scheme_end = 8;
  } else {
    return bad("must start with http:// or https://");
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return bad("must not contain spaces or control characters");
  }
  // The authority ends at the first '/', '?' or '#' after the user info.
  std::string_view rest = std::string_view(url).substr(scheme_end);
  if (auto info = UrlUserInfo(url)) rest = rest.substr(info->size() + 1);
  std::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close < 2) return bad("has a malformed IPv6 address");
    std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("has a malformed host");
    if (!after.empty()) port = after.substr(1);
  } else {
    size_t colon = host.rfind(':');
    if (colon == 0 || host.empty()) return bad("has no host");
    if (colon != std::string_view::npos) port = host.substr(colon + 1);
    if (colon != std::string_view::npos && port.empty()) return bad("has a malformed port");
  }
  if (!port.empty() && (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
                        std::stoi(std::string(port)) > 65535)) {
    return bad("has a malformed port");
  }
  return Status::OK();
}

std::string ExpandTableUrl(std::string_view url, std::string_view table) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (unsigned char c : table) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded.push_back(static_cast<char>(c));
    } else {
      encoded.push_back('%');
      encoded.push_back(kHex[c >> 4]);
      encoded.push_back(kHex[c & 15]);
    }
  }
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t at = url.find("{table}", pos);
    if (at == std::string_view::npos) break;
    out.append(url.substr(pos, at - pos));
    out.append(encoded);
    pos = at + 7;
  }
  out.append(url.substr(pos));
  return out;
}

}  // namespace sluice::destinations
