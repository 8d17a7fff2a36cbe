#include "destinations/http/http_destination.h"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>

#include "destinations/events/event_destinations.h"
#include "destinations/http/http_requests.h"
#include "destinations/http/json_rows.h"
#include "io/s3/sigv4.h"

namespace sluice::destinations {
namespace {

/// 128 random bits as hex: for loads and copies that have no identity of
/// their own (their keys must then not match any other's).
std::string RandomHex() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // Without OpenSSL's generator: the standard library's.
    std::random_device device;
    for (auto& b : bytes) b = static_cast<unsigned char>(device());
  }
  return io::HexEncode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// ---------------------------------------------------------------------------
// Batch pipelines

class HttpDestination : public Destination {
 public:
  explicit HttpDestination(HttpSendOptions options) : o_(std::move(options)) {}
  ~HttpDestination() override { Abort(); }

  Status PrepareLoad(const LoadContext& load) override {
    if (!load.pipeline.empty()) o_.pipeline = load.pipeline;
    if (!load.input_identity.empty()) {
      input_ = "input " + load.input_identity;
    } else if (load.run_id != 0) {
      input_ = "run " + std::to_string(load.run_id);
    }
    return Status::OK();
  }

  Status Begin(const Schema& schema) override {
    Abort();
    // Without an identity of the input the keys are this load's own: a
    // rerun cannot be recognised, but neither can another input's rows be
    // mistaken for a replay of these.
    if (input_.empty()) input_ = "load " + RandomHex();
    encoder_ = std::make_unique<JsonRowEncoder>(schema, o_.decimals);
    cutter_ = std::make_unique<RowRequestCutter>(o_.format, o_.max_rows, o_.max_bytes);
    SLUICE_ASSIGN_OR_RETURN(auto delivery, HttpDelivery::Make(o_, o_.concurrency));
    {
      std::lock_guard lock(mu_);
      if (interrupted_) return Status::Cancelled(Describe() + ": interrupted");
      delivery_ = std::move(delivery);
    }
    group_ = std::make_unique<HttpDelivery::Group>(delivery_.get());
    dead_items_ = dead_requests_ = 0;
    return Status::OK();
  }

  Status Write(const Batch& batch) override {
    SLUICE_RETURN_IF_ERROR(Loading());
    SLUICE_RETURN_IF_ERROR(encoder_->CheckLayout(batch));
    for (int64_t row = 0; row < batch.num_rows(); ++row) {
      scratch_.clear();
      encoder_->AppendRow(batch, row, &scratch_);
      cutter_->Add(scratch_, &done_);
      if (!done_.empty()) SLUICE_RETURN_IF_ERROR(SendDone());
    }
    return Status::OK();
  }

  bool SupportsEncode() const override { return true; }

  Result<std::string> Encode(const Batch& batch) override {
    if (!encoder_) return Status::Internal(Describe() + ": Encode before Begin");
    SLUICE_RETURN_IF_ERROR(encoder_->CheckLayout(batch));
    std::string out;
    for (int64_t row = 0; row < batch.num_rows(); ++row) {
      encoder_->AppendRow(batch, row, &out);
      out.push_back('\n');  // rows never hold a raw line break
    }
    return out;
  }

  Status WriteEncoded(std::string bytes, int64_t /*rows*/) override {
    SLUICE_RETURN_IF_ERROR(Loading());
    std::string_view rest(bytes);
    while (!rest.empty()) {
      size_t end = rest.find('\n');
      if (end == std::string_view::npos) end = rest.size();
      cutter_->Add(rest.substr(0, end), &done_);
      rest.remove_prefix(std::min(rest.size(), end + 1));
      if (!done_.empty()) SLUICE_RETURN_IF_ERROR(SendDone());
    }
    return Status::OK();
  }

  Status Commit() override {
    SLUICE_RETURN_IF_ERROR(Loading());
    cutter_->Finish(&done_);
    Status status = SendDone();
    Status waited = group_->Wait();
    if (status.ok()) status = waited;
    dead_items_ = delivery_->dead_lettered_items();
    dead_requests_ = delivery_->dead_lettered_requests();
    if (!status.ok()) return status;
    group_.reset();
    std::lock_guard lock(mu_);
    delivery_.reset();
    return Status::OK();
  }

  void Abort() override {
    {
      std::lock_guard lock(mu_);
      if (delivery_) delivery_->Interrupt();
    }
    group_.reset();  // waits for the cancelled requests' callbacks
    std::lock_guard lock(mu_);
    delivery_.reset();
    done_.clear();
  }

  void Interrupt() override {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    if (delivery_) delivery_->Interrupt();
  }

  Delivery delivery() const override { return Delivery::kAtLeastOnce; }
  /// Requests are cut from the rows in their input order: the same input
  /// must give the same requests (and keys) on every run.
  bool NeedsInputOrder() const override { return true; }

  std::string Describe() const override { return DescribeHttp(o_); }

  std::string Note() const override {
    if (dead_items_ == 0) return "";
    return Plural(dead_items_, "row", "rows") + " in " + Plural(dead_requests_, "request", "requests") +
           " dead-lettered to " + o_.dead_letter;
  }

  Result<std::string> Check(const Schema& /*schema*/) override {
    SLUICE_RETURN_IF_ERROR(CheckHttpUrl(o_.url, "url"));
    return Describe() + " (not contacted; at least once, an Idempotency-Key on every request)";
  }
  /// Not contacted: a probe would be a request the receiver has to handle.
  Status Ping() override { return Status::OK(); }

 private:
  Status Loading() const {
    if (!group_) return Status::Internal(Describe() + ": write without a successful Begin");
    return Status::OK();
  }

  Status SendDone() {
    Status status;
    for (RowRequest& request : done_) {
      if (!status.ok()) break;
      OutgoingRequest out;
      out.url = o_.url;
      out.body = std::move(request.body);
      out.idempotency_key = RowRequestKey(o_.pipeline, input_, request.number);
      out.items = request.rows;
      out.what =
          "request " + std::to_string(request.number) + " (" + Plural(request.rows, "row", "rows") + ")";
      status = group_->Send(std::move(out));
    }
    done_.clear();
    return status;
  }

  HttpSendOptions o_;
  std::string input_;  // what the keys name the input by
  std::unique_ptr<JsonRowEncoder> encoder_;
  std::unique_ptr<RowRequestCutter> cutter_;
  std::vector<RowRequest> done_;
  std::string scratch_;
  int64_t dead_items_ = 0;
  int64_t dead_requests_ = 0;
  std::mutex mu_;  // delivery_ and interrupted_, for Interrupt from other threads
  bool interrupted_ = false;
  std::unique_ptr<HttpDelivery> delivery_;
  std::unique_ptr<HttpDelivery::Group> group_;
};

// ---------------------------------------------------------------------------
// CDC pipelines

// Requests of one URL are sent one at a time (they must arrive in commit
// order); with {table} in the URL, up to this many tables' requests at once.
constexpr int kCdcWindow = 8;
// One transaction per request at most: see EventRequestCutter. Grouping
// small transactions would save requests, but a replay after a crash would
// not cut them as before, and its keys would not match.
constexpr bool kGroupTransactions = false;

class HttpCdcDestination : public CdcDestination {
 public:
  explicit HttpCdcDestination(HttpSendOptions options)
      : o_(std::move(options)), split_(o_.url.find("{table}") != std::string::npos) {}

  Status Open() override {
    SLUICE_ASSIGN_OR_RETURN(auto delivery, HttpDelivery::Make(o_, kCdcWindow));
    std::lock_guard lock(mu_);
    if (interrupted_) return Status::Cancelled(Describe() + ": interrupted");
    delivery_ = std::move(delivery);
    return Status::OK();
  }

  /// Sends {"op":"copy_start","table":...}, which opens a new copy of the
  /// table: a receiver drops what an earlier, interrupted copy sent.
  Status TruncateTable(const CdcTable& table) override {
    SLUICE_RETURN_IF_ERROR(Opened());
    const std::string name = table.QualifiedName();
    auto copy = std::make_shared<CopyState>();
    copy->id = RandomHex();
    {
      std::lock_guard lock(copies_mu_);
      copies_[name] = copy;
    }
    std::string event = "{\"op\":\"copy_start\",\"table\":";
    AppendJsonString(name, &event);
    event += "}";
    RequestBody body(o_.format);
    body.Append(event);
    OutgoingRequest out;
    out.url = UrlFor(name);
    out.body = body.Take();
    out.idempotency_key = CopyStartKey(o_.pipeline, name, copy->id);
    out.items = 1;
    out.what = "copy_start of " + name;
    HttpDelivery::Group group(delivery_.get());
    SLUICE_RETURN_IF_ERROR(group.Send(std::move(out)));
    return group.Wait();
  }

  /// Rows of the initial copy as {"op":"copy",...} events, keyed by the
  /// table, the copy (a random id drawn by TruncateTable) and the chunk's
  /// number within that copy. Why not a key derived from the rows' place:
  /// an interrupted copy is never resumed, it starts again with
  /// TruncateTable from a new snapshot, whose rows may differ, and several
  /// copy workers cut the table into chunks in whatever order they run. A
  /// key that matched the earlier attempt's would make the receiver drop
  /// new rows as replays; the copy_start event tells it to drop the earlier
  /// attempt's rows instead.
  Status WriteTableRows(const CdcTable& table, const ChangeBatch& rows) override {
    SLUICE_RETURN_IF_ERROR(Opened());
    const std::string name = table.QualifiedName();
    std::shared_ptr<CopyState> copy;
    {
      std::lock_guard lock(copies_mu_);
      auto& slot = copies_[name];
      if (!slot) {
        slot = std::make_shared<CopyState>();
        slot->id = RandomHex();
      }
      copy = slot;
    }
    const std::string url = UrlFor(name);
    RowRequestCutter cutter(o_.format, o_.max_rows, o_.max_bytes);
    HttpDelivery::Group group(delivery_.get());
    std::vector<RowRequest> done;
    std::string scratch;
    Status status;
    auto send = [&] {
      for (RowRequest& request : done) {
        if (!status.ok()) break;
        int64_t chunk = copy->next_chunk.fetch_add(1);
        OutgoingRequest out;
        out.url = url;
        out.body = std::move(request.body);
        out.idempotency_key = CopyChunkKey(o_.pipeline, name, copy->id, chunk);
        out.items = request.rows;
        out.what = "copy chunk " + std::to_string(chunk) + " of " + name + " (" +
                   Plural(request.rows, "row", "rows") + ")";
        status = group.Send(std::move(out));
      }
      done.clear();
    };
    for (const ChangeEvent& event : rows.events()) {
      scratch.clear();
      AppendEventJson(rows, event, table, /*copy=*/true, &scratch);
      cutter.Add(scratch, &done);
      if (!done.empty()) send();
      if (!status.ok()) break;
    }
    if (status.ok()) {
      cutter.Finish(&done);
      send();
    }
    // Not CancelInFlight: the client is shared with the other copy workers
    // and tables; the group's Wait drains its own requests.
    Status waited = group.Wait();
    return status.ok() ? waited : status;
  }

  /// Returns when every request of the batch was accepted or dead-lettered.
  /// The open part of a transaction that continues in the next batch
  /// (an incomplete batch) is kept for it.
  Status WriteEvents(const ChangeBatch& batch, const std::vector<CommitStatement>& /*checkpoint*/) override {
    SLUICE_RETURN_IF_ERROR(Opened());
    failed_table_.reset();
    HttpDelivery::Group group(delivery_.get());
    Status status;
    std::string scratch;
    const CdcTable* last_table = nullptr;
    Stream* stream = nullptr;
    for (const ChangeEvent& event : batch.events()) {
      const CdcTable& table = *event.table;
      if (&table != last_table) {
        stream = &StreamFor(table);
        last_table = &table;
      }
      scratch.clear();
      AppendEventJson(batch, event, table, /*copy=*/false, &scratch);
      stream->cutter.Add(event.commit_lsn, scratch, &events_done_);
      if (!events_done_.empty()) status = SendEvents(*stream, &group);
      if (!status.ok()) break;
    }
    if (status.ok() && batch.complete()) {
      for (auto& [name, each] : streams_) {
        each.cutter.Flush(&events_done_);
        status = SendEvents(each, &group);
        if (!status.ok()) break;
      }
    }
    // Not CancelInFlight: the client is shared with the other copy workers
    // and tables; the group's Wait drains its own requests.
    Status waited = group.Wait();
    if (status.ok()) status = waited;
    // A request of one table that the receiver refused (no dead_letter):
    // that table goes to errored and the others go on.
    if (status.code() == StatusCode::kDataError && group.error_table() != 0)
      failed_table_ = group.error_table();
    // After a failure the stream starts again at the last complete batch:
    // so do the cutters.
    if (!status.ok()) DiscardIncomplete();
    return status;
  }

  std::optional<uint32_t> FailedTable() const override { return failed_table_; }

  void DiscardIncomplete() override {
    for (auto& [name, stream] : streams_) stream.cutter.Reset();
    events_done_.clear();
  }

  void Interrupt() override {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    if (delivery_) delivery_->Interrupt();
  }

  std::string Describe() const override {
    return DescribeHttp(o_) + " (change events as JSON, at least once with Idempotency-Key)";
  }
  Status Check() override { return CheckHttpUrl(o_.url, "url"); }
  /// Not contacted: a probe would be a request the receiver has to handle.
  Status Ping() override { return Status::OK(); }

 private:
  struct CopyState {
    std::string id;
    std::atomic<int64_t> next_chunk{0};
  };
  struct Stream {
    std::string table;  // "" unless the URL splits by table
    std::string url;
    EventRequestCutter cutter;
    uint32_t table_id = 0;  // when split by table
  };

  Status Opened() const {
    if (!delivery_) return Status::Internal(Describe() + ": used before Open");
    return Status::OK();
  }

  std::string UrlFor(const std::string& table) const {
    return split_ ? ExpandTableUrl(o_.url, table) : o_.url;
  }

  Stream& StreamFor(const CdcTable& table) {
    std::string key = split_ ? table.QualifiedName() : std::string();
    auto it = streams_.find(key);
    if (it == streams_.end()) {
      it = streams_
               .emplace(key,
                        Stream{key, UrlFor(key),
                               EventRequestCutter(o_.format, o_.max_rows, o_.max_bytes, kGroupTransactions),
                               split_ ? table.id : 0})
               .first;
    }
    return it->second;
  }

  Status SendEvents(const Stream& stream, HttpDelivery::Group* group) {
    Status status;
    for (EventRequest& request : events_done_) {
      if (!status.ok()) break;
      OutgoingRequest out;
      out.url = stream.url;
      out.table_id = stream.table_id;
      out.idempotency_key = EventRequestKey(o_.pipeline, stream.table, request);
      out.items = request.events;
      out.what = "events " + std::to_string(request.first_index) + ".." +
                 std::to_string(request.first_index + request.events - 1) +
                 " of the transaction committed at " + CdcLsnToString(request.commit_lsn) +
                 (stream.table.empty() ? "" : " on " + stream.table);
      out.body = std::move(request.body);
      // One request of a URL in flight at a time: commit order.
      status = group->Send(std::move(out), stream.url);
    }
    events_done_.clear();
    return status;
  }

  std::optional<uint32_t> failed_table_;  // see FailedTable
  HttpSendOptions o_;
  const bool split_;                       // the URL holds {table}
  std::map<std::string, Stream> streams_;  // by table ("" when not split); the apply thread's
  std::vector<EventRequest> events_done_;
  std::mutex copies_mu_;
  std::map<std::string, std::shared_ptr<CopyState>> copies_;
  std::mutex mu_;
  bool interrupted_ = false;
  std::unique_ptr<HttpDelivery> delivery_;
};

}  // namespace

std::unique_ptr<Destination> MakeHttpDestination(HttpSendOptions options) {
  return std::make_unique<HttpDestination>(std::move(options));
}

std::unique_ptr<CdcDestination> MakeHttpCdcDestination(HttpSendOptions options) {
  return std::make_unique<HttpCdcDestination>(std::move(options));
}

Status RegisterHttpDestinations(Registry& registry) {
  SLUICE_RETURN_IF_ERROR(registry.AddDestination(
      "http",
      [](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
        SLUICE_ASSIGN_OR_RETURN(HttpSendOptions options, ReadHttpSendOptions(t, /*cdc=*/false));
        return MakeHttpDestination(std::move(options));
      },
      {"rows as JSON to an HTTP endpoint, with retries, an Idempotency-Key per request and a dead-letter "
       "file "
       "(at least once)",
       {"url", "method", "format", "decimals", "headers", "max_rows", "max_bytes", "concurrency", "timeout",
        "dead_letter", "retry"}}));
  return registry.AddCdcDestination(
      "http",
      [](const ConfigTable& t) -> Result<std::unique_ptr<CdcDestination>> {
        SLUICE_ASSIGN_OR_RETURN(HttpSendOptions options, ReadHttpSendOptions(t, /*cdc=*/true));
        return MakeHttpCdcDestination(std::move(options));
      },
      {"change events as JSON to an HTTP endpoint ({table} in the URL: one per table), in commit order, with "
       "an "
       "Idempotency-Key per request (at least once)",
       {"url", "method", "format", "decimals", "headers", "max_rows", "max_bytes", "timeout", "dead_letter",
        "retry"}});
}

}  // namespace sluice::destinations
