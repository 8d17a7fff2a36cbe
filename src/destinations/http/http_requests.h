// How the HTTP destinations turn rows and change events into requests: the
// body formats, the rules that cut a stream into requests, the
// Idempotency-Key of each request and the dead-letter line of a refused
// one. Everything here is deterministic (the same input cut the same way
// gives the same requests and keys) and free of I/O, so it is tested on its
// own.
//
// Cutting rules:
// - Rows of a load (RowRequestCutter): a request ends after max_rows rows,
//   or before a row that would take its body past max_bytes; a row larger
//   than max_bytes on its own goes alone. Requests are numbered 0, 1, 2...
//   within the load, so the same input gives the same numbers.
// - Change events (EventRequestCutter): the events of one transaction (one
//   commit LSN) are cut at fixed offsets counted from the transaction's
//   first event (every max_rows events, or earlier where max_bytes would
//   be passed), and a request never continues past the end of its
//   transaction. A request is therefore named by the commit LSN of its
//   transaction, the index of its first event within it and its number of
//   events, whatever the batches the events arrived in. (Grouping several
//   small transactions into one request is available, but then the cut
//   depends on where the stream's batches ended, and a replay after a crash
//   may group them differently: see EventRequestCutter.)
//
// Thread-safety: the cutters are used by one thread at a time; the free
// functions are pure.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/cdc.h"
#include "sluice/status.h"

namespace sluice::destinations {

enum class BodyFormat {
  kJson,       // one JSON array of objects
  kJsonLines,  // one object per line (ndjson)
};

/// "application/json" or "application/x-ndjson".
const char* ContentTypeOf(BodyFormat format);

/// Items (JSON objects without line breaks) framed as one request body.
class RequestBody {
 public:
  explicit RequestBody(BodyFormat format = BodyFormat::kJson);

  int64_t items() const { return items_; }
  bool empty() const { return items_ == 0; }
  /// The framed body's size in bytes.
  int64_t bytes() const;
  /// The framed size with one more item of `item_bytes` bytes.
  int64_t BytesWith(int64_t item_bytes) const;
  /// The framed size with every item of `other` added.
  int64_t BytesWith(const RequestBody& other) const;
  void Append(std::string_view item);
  /// Appends every item of `other` (of the same format).
  void Append(const RequestBody& other);
  /// The framed body; the builder is empty afterwards.
  std::string Take();

 private:
  BodyFormat format_;
  std::string content_;  // json: "[" and the items joined by ","; jsonl: each item and "\n"
  int64_t items_ = 0;
};

struct RowRequest {
  int64_t number = 0;  // 0, 1, 2... within the load
  int64_t rows = 0;
  std::string body;
};

class RowRequestCutter {
 public:
  RowRequestCutter(BodyFormat format, int64_t max_rows, int64_t max_bytes);
  /// Adds one row (a JSON object); appends the requests it completes.
  void Add(std::string_view row, std::vector<RowRequest>* done);
  /// Closes the last request, if any rows are open.
  void Finish(std::vector<RowRequest>* done);
  int64_t open_rows() const { return open_.items(); }

 private:
  void Close(std::vector<RowRequest>* done);
  BodyFormat format_;
  int64_t max_rows_;
  int64_t max_bytes_;
  RequestBody open_;
  int64_t next_number_ = 0;
};

struct EventRequest {
  CdcLsn commit_lsn = 0;    // of the request's first transaction
  int64_t first_index = 0;  // of its first event within that transaction
  int64_t events = 0;
  std::string body;
};

class EventRequestCutter {
 public:
  /// `group_transactions`: consecutive whole transactions may share a
  /// request (up to max_events / max_bytes). That saves requests for
  /// streams of small transactions, but a request then ends where the
  /// batch ended (Flush), so a replay whose batches end elsewhere cuts
  /// differently and sends some events again under new keys. Off, every
  /// cut is at a transaction boundary or at a fixed offset inside one.
  EventRequestCutter(BodyFormat format, int64_t max_events, int64_t max_bytes, bool group_transactions);
  /// Adds one event (a JSON object) of the transaction that commits at
  /// `commit_lsn`; appends the requests it completes.
  void Add(CdcLsn commit_lsn, std::string_view event, std::vector<EventRequest>* done);
  /// The events so far end at a transaction boundary (a complete batch):
  /// closes every open request.
  void Flush(std::vector<EventRequest>* done);
  /// Forgets open requests and the position within the current
  /// transaction (the stream restarts at a transaction boundary).
  void Reset();
  int64_t open_events() const { return chunk_.body.items() + group_.body.items(); }

 private:
  struct Piece {
    RequestBody body;
    CdcLsn commit_lsn = 0;
    int64_t first_index = 0;
  };
  void EndTransaction(std::vector<EventRequest>* done);
  void Emit(Piece* piece, std::vector<EventRequest>* done);
  BodyFormat format_;
  int64_t max_events_;
  int64_t max_bytes_;
  bool group_transactions_;
  bool in_transaction_ = false;
  CdcLsn commit_lsn_ = 0;
  int64_t index_ = 0;  // events of the current transaction added so far
  Piece chunk_;        // the open part of the current transaction
  Piece group_;        // whole transactions waiting for more (grouping only)
};

/// Lowercase hex SHA-256 of the fields, each length-prefixed, so that two
/// different lists of fields never hash the same input.
std::string IdempotencyKey(std::initializer_list<std::string_view> fields);
/// Request `number` of a load of `input` (LoadContext::input_identity, or
/// the run) in `pipeline`.
std::string RowRequestKey(std::string_view pipeline, std::string_view input, int64_t number);
/// A request of change events; `table` is "" unless the URL splits requests
/// by table.
std::string EventRequestKey(std::string_view pipeline, std::string_view table, const EventRequest& request);
/// The copy_start event and chunk `chunk` of one initial copy of `table`.
std::string CopyStartKey(std::string_view pipeline, std::string_view table, std::string_view copy_id);
std::string CopyChunkKey(std::string_view pipeline, std::string_view table, std::string_view copy_id,
                         int64_t chunk);

/// The items of a body as one JSON array (a jsonl body's lines joined).
std::string BodyAsJsonArray(BodyFormat format, std::string_view body);

/// At most `max_bytes` of `text`, not cutting a UTF-8 sequence in two.
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);

/// One line of a dead-letter file, ending in "\n":
/// {"time":...,"url":...,"status":400,"response":"...","error":"...",
///  "idempotency_key":"...","rows":[...]}. status 0 (no response) is null;
/// `response` is cut to its first 1 KB.
struct DeadLetterEntry {
  std::string time;  // ISO 8601
  std::string url;   // credentials already removed
  long status = 0;
  std::string_view response;
  std::string error;
  std::string idempotency_key;
  BodyFormat format = BodyFormat::kJson;
  std::string_view body;  // the request's body as sent
};
std::string DeadLetterLine(const DeadLetterEntry& entry);

/// OK when `url` is an absolute http:// or https:// URL with a host; the
/// error names `key` and the URL without credentials.
Status CheckHttpUrl(const std::string& url, const std::string& key);
/// `url` with every "{table}" replaced by `table` ("public.orders"),
/// percent-encoded where a URL needs it.
std::string ExpandTableUrl(std::string_view url, std::string_view table);

}  // namespace sluice::destinations
