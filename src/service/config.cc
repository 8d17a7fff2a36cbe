#include "service/config.h"

#include "service/schedule.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "io/postgres/pg_conninfo.h"

namespace sluice::service {

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<std::string> Interpolate(const std::string& text, const EnvLookup& env, const std::string& where) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out += c;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {
      out += c;
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      return Status::InvalidArgument(where + ": unterminated ${ in value");
    }
    std::string body = text.substr(i + 2, close - i - 2);
    std::optional<std::string> fallback;
    size_t dash = body.find(":-");
    if (dash != std::string::npos) {
      fallback = body.substr(dash + 2);
      body = body.substr(0, dash);
    }
    if (body.empty() || !std::all_of(body.begin(), body.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
        })) {
      // Not echoed: this may be a password with "${" in it.
      return Status::InvalidArgument(where + ": bad variable name after ${ (write a literal $ as $$)");
    }
    auto value = env(body);
    if (!value || (value->empty() && fallback)) {
      if (!fallback) {
        return Status::InvalidArgument("environment variable " + body + " is not set (used in " + where +
                                       "); set it or write ${" + body + ":-default}");
      }
      value = fallback;
    }
    out += *value;
    i = close;
  }
  return out;
}

Result<int64_t> ParseDurationMillis(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad duration '" + text + "' (expected e.g. 250ms, 30s, 5m, 24h, 1d)");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return bad();
  auto too_long = [&] { return Status::InvalidArgument("bad duration '" + text + "': longer than 100 years"); };
  if (digits > 15) return too_long();  // beyond 100 years in any unit, and beyond what stoll reads
  int64_t n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  int64_t mult = 0;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s" || unit.empty())
    mult = 1000;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else if (unit == "d")
    mult = 86'400'000;
  if (mult == 0 || n <= 0) return bad();
  // Longer than any interval or timeout means anything; the limit also
  // keeps every use (the clock's nanoseconds) from overflowing.
  constexpr int64_t kMaxMillis = int64_t{100} * 366 * 86'400'000;
  if (n > kMaxMillis / mult) return too_long();
  return n * mult;
}

Result<int64_t> ParseDurationSeconds(const std::string& text) {
  SLUICE_ASSIGN_OR_RETURN(int64_t ms, ParseDurationMillis(text));
  return (ms + 999) / 1000;
}

Result<int64_t> ParseBytes(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad size '" + text + "' (expected e.g. 8MB, 512KiB, 1GB)");
  };
  // A plain decimal number (no sign, exponent, inf or nan) and a unit.
  size_t end = 0;
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.'))
    ++end;
  std::string number = text.substr(0, end);
  if (number.empty() || number.size() > 20 || std::count(number.begin(), number.end(), '.') > 1 ||
      number == ".") {
    return bad();
  }
  double n = std::stod(number);
  std::string unit = text.substr(end);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else if (unit == "TB")
    mult = 1e12;
  else if (unit == "KIB")
    mult = 1024;
  else if (unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "TIB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  // NaN, infinity and sizes beyond int64_t are no sizes (and converting
  // them to an integer is undefined).
  const double bytes = n * mult;
  if (mult == 0 || !(bytes < 0x1p63)) return bad();
  return static_cast<int64_t>(bytes);
}

namespace {

class Reader {
 public:
  Reader(const toml::table& root, const EnvLookup& env) : root_(root), env_(env) {}

  const toml::table* Section(const std::string& name, bool required) {
    sections_seen_.insert(name);
    const toml::node* node = root_.get(name);
    if (!node) {
      if (required) Fail(Status::InvalidArgument("missing [" + name + "] section"));
      return nullptr;
    }
    if (!node->is_table()) {
      Fail(Status::InvalidArgument("[" + name + "] must be a table"));
      return nullptr;
    }
    return node->as_table();
  }

  void String(const toml::table* t, const std::string& sec, const std::string& key, std::string* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (!n->is_string()) {
      Fail(Status::InvalidArgument(Where(sec, key) + " must be a string"));
      return;
    }
    auto v = Interpolate(n->as_string()->get(), env_, Where(sec, key));
    if (!v.ok()) {
      Fail(v.status());
      return;
    }
    *out = *v;
  }

  void Bool(const toml::table* t, const std::string& sec, const std::string& key, std::optional<bool>* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (n->is_boolean()) {
      *out = n->as_boolean()->get();
    } else if (n->is_string()) {
      std::string s;
      String(t, sec, key, &s);
      if (s == "true")
        *out = true;
      else if (s == "false")
        *out = false;
      else
        Fail(Status::InvalidArgument(Where(sec, key) + " must be true or false"));
    } else {
      Fail(Status::InvalidArgument(Where(sec, key) + " must be true or false"));
    }
  }

  void Int(const toml::table* t, const std::string& sec, const std::string& key, int64_t* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (n->is_integer()) {
      *out = n->as_integer()->get();
    } else if (n->is_string()) {
      std::string s;
      String(t, sec, key, &s);
      try {
        size_t pos = 0;
        *out = std::stoll(s, &pos);
        if (pos != s.size()) throw std::invalid_argument(s);
      } catch (...) {
        Fail(Status::InvalidArgument(Where(sec, key) + " must be a whole number"));
      }
    } else {
      Fail(Status::InvalidArgument(Where(sec, key) + " must be a whole number"));
    }
  }

  /// A size: "8MB", "512KiB", or a whole number of bytes.
  void Bytes(const toml::table* t, const std::string& sec, const std::string& key, int64_t* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (n->is_integer()) {
      *out = n->as_integer()->get();
      return;
    }
    std::string text;
    String(t, sec, key, &text);
    auto bytes = ParseBytes(text);
    if (!bytes.ok()) return Fail(bytes.status().WithContext(Where(sec, key)));
    *out = *bytes;
  }

  /// A duration: "250ms", "30s", "5m", "24h", "1d"; stored in milliseconds.
  void Millis(const toml::table* t, const std::string& sec, const std::string& key, int64_t* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    std::string text;
    if (n->is_integer()) {
      text = std::to_string(n->as_integer()->get()) + "s";
    } else {
      String(t, sec, key, &text);
    }
    auto ms = ParseDurationMillis(text);
    if (!ms.ok()) return Fail(ms.status().WithContext(Where(sec, key)));
    *out = *ms;
  }

  /// Keys of `sec` that are not in `accepted`: they belong to another
  /// component type (a CDC key on a files source) and are errors.
  void OnlyKeys(const toml::table* t, const std::string& sec, const std::string& type,
                std::initializer_list<const char*> accepted) {
    if (!t) return;
    std::set<std::string> ok(accepted.begin(), accepted.end());
    ok.insert("type");
    for (const auto& [k, v] : *t) {
      std::string key(k.str());
      if (ok.count(key) || !known_.count(sec + "." + key)) continue;  // unknown keys are reported elsewhere
      std::string list;
      for (const auto& a : ok) list += (list.empty() ? "" : ", ") + a;
      Fail(Status::InvalidArgument("[" + sec + "] key '" + key + "' does not apply to type \"" + type +
                                   "\" (its keys: " + list + ")"));
      return;
    }
  }

  void StringList(const toml::table* t, const std::string& sec, const std::string& key,
                  std::vector<std::string>* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (n->is_string()) {
      std::string s;
      String(t, sec, key, &s);
      out->push_back(s);
      return;
    }
    if (!n->is_array()) {
      Fail(Status::InvalidArgument(Where(sec, key) + " must be a list of strings"));
      return;
    }
    for (const auto& item : *n->as_array()) {
      if (!item.is_string()) {
        Fail(Status::InvalidArgument(Where(sec, key) + " must be a list of strings"));
        return;
      }
      auto v = Interpolate(item.as_string()->get(), env_, Where(sec, key));
      if (!v.ok()) return Fail(v.status());
      out->push_back(*v);
    }
  }

  /// An inline table of name = "TYPE", kept in the order written.
  void Columns(const toml::table* t, const std::string& sec, const std::string& key,
               std::vector<std::pair<std::string, std::string>>* out) {
    Mark(sec, key);
    if (!t) return;
    const toml::node* n = t->get(key);
    if (!n) return;
    if (!n->is_table())
      return Fail(Status::InvalidArgument(Where(sec, key) + " must be a table of name = \"TYPE\""));
    struct Entry {
      toml::source_position pos;
      std::string name, type;
    };
    std::vector<Entry> entries;
    for (const auto& [k, v] : *n->as_table()) {
      if (!v.is_string()) {
        return Fail(Status::InvalidArgument(Where(sec, key) + "." + std::string(k.str()) +
                                            " must be a type name string"));
      }
      entries.push_back(Entry{k.source().begin, std::string(k.str()), v.as_string()->get()});
    }
    // toml++ keeps keys sorted; the order written matters for header-less CSV.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
    });
    for (auto& e : entries) out->emplace_back(e.name, e.type);
  }

  /// Unknown keys are errors: a typo must not silently change behaviour.
  void CheckUnknown() {
    for (const auto& [k, v] : root_) {
      std::string sec(k.str());
      if (sec == "name" && v.is_string()) continue;
      if (!sections_seen_.count(sec)) {
        Fail(Status::InvalidArgument("unknown section [" + sec + "]"));
        continue;
      }
      if (!v.is_table()) continue;
      for (const auto& [k2, v2] : *v.as_table()) {
        std::string key(k2.str());
        if (!known_.count(sec + "." + key)) Fail(Status::InvalidArgument("unknown key " + Where(sec, key)));
      }
    }
  }

  void Fail(Status status) {
    if (status_.ok()) status_ = std::move(status);
  }
  const Status& status() const { return status_; }

 private:
  static std::string Where(const std::string& sec, const std::string& key) { return "[" + sec + "] " + key; }
  void Mark(const std::string& sec, const std::string& key) { known_.insert(sec + "." + key); }

  const toml::table& root_;
  const EnvLookup& env_;
  std::set<std::string> sections_seen_;
  std::set<std::string> known_;
  Status status_;
};

}  // namespace

namespace {

/// The checks of a postgres_cdc pipeline; fills defaults that depend on the name.
Status ValidateCdcConfig(PipelineConfig* cfg) {
  SourceConfig& src = cfg->source;
  if (src.url.empty()) return Status::InvalidArgument("[source] url is required for type = \"postgres_cdc\"");
  if (src.publication.empty()) {
    return Status::InvalidArgument("[source] publication is required for type = \"postgres_cdc\"");
  }
  if (src.slot.empty()) {
    src.slot = "sluice_";
    for (char c : cfg->name) {
      src.slot.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c))
                                                                     : '_');
    }
  }
  for (char c : src.slot) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_')) {
      return Status::InvalidArgument("[source] slot '" + src.slot +
                                     "': replication slot names use only lower-case letters, digits and _");
    }
  }
  if (src.slot.size() > 63) return Status::InvalidArgument("[source] slot is longer than 63 characters");
  if (src.max_table_sync_workers < 1 || src.max_table_sync_workers > 64) {
    return Status::InvalidArgument("[source] max_table_sync_workers must be between 1 and 64");
  }
  if (src.table_error_retry_delay_ms < 0 || src.table_error_retry_max_attempts < 0) {
    return Status::InvalidArgument("[source] table_error_retry_* must not be negative");
  }
  if (src.publication_refresh_ms < 100) {
    return Status::InvalidArgument("[source] publication_refresh_ms must be at least 100");
  }
  if (cfg->batch.max_rows < 1 || cfg->batch.max_bytes < 1024 || cfg->batch.max_fill_ms < 0) {
    return Status::InvalidArgument(
        "[batch] max_rows must be at least 1, max_bytes at least 1KB, max_fill_ms >= 0");
  }
  const std::string& type = cfg->destination.type;
  if (type == "file" || type == "stdout") {
    // Change events are written as JSON lines, uncompressed, whatever a name says.
    const std::string& format = cfg->destination.format;
    if (!format.empty() && format != "jsonl" && format != "json") {
      return Status::InvalidArgument("[destination] format = \"" + format + "\": a " + type +
                                     " destination of a postgres_cdc pipeline writes change events as JSON "
                                     "lines only (format = \"jsonl\")");
    }
    std::string lower = cfg->destination.path;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* ext : {".parquet", ".pq", ".csv", ".tsv", ".gz", ".zst", ".zstd"}) {
      if (lower.ends_with(ext)) {
        return Status::InvalidArgument("[destination] path " + cfg->destination.path +
                                       ": change events are written as plain JSON lines; name the file "
                                       ".jsonl");
      }
    }
  }
  if (!cfg->transform_sql.empty()) {
    return Status::InvalidArgument(
        "[transform] is not supported for postgres_cdc sources (changes are applied as "
        "they are)");
  }
  if (cfg->schedule) {
    return Status::InvalidArgument("[schedule] does not apply to postgres_cdc: it replicates continuously");
  }
  if (type == "postgres") {
    if (cfg->destination.url.empty())
      return Status::InvalidArgument("[destination] url is required for postgres");
    if (cfg->destination.schema.empty())
      return Status::InvalidArgument("[destination] schema must not be empty");
  } else if (type == "file") {
    if (cfg->destination.path.empty())
      return Status::InvalidArgument("[destination] path is required for file");
  } else if (type != "stdout" && type != "memory" && type != "null") {
    return Status::InvalidArgument("[destination] type '" + type +
                                   "' cannot take changes; use postgres, stdout, file, memory or null");
  }
  return Status::OK();
}

}  // namespace

Result<PipelineConfig> ParsePipelineConfig(const std::string& toml_text, const std::string& file_name,
                                           const EnvLookup& env) {
  toml::table root;
  try {
    root = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << file_name << " line " << e.source().begin.line << ": " << e.description();
    return Status::InvalidArgument(msg.str());
  }
  PipelineConfig cfg;
  cfg.file = file_name;
  Reader r(root, env);
  const toml::table* src = r.Section("source", true);
  r.String(src, "source", "type", &cfg.source.type);
  r.String(src, "source", "path", &cfg.source.path);
  r.String(src, "source", "format", &cfg.source.format);
  r.Bool(src, "source", "header", &cfg.source.header);
  r.String(src, "source", "delimiter", &cfg.source.delimiter);
  r.Columns(src, "source", "columns", &cfg.source.columns);
  r.String(src, "source", "on_error", &cfg.source.on_error);
  r.String(src, "source", "rejects", &cfg.source.rejects);
  r.Int(src, "source", "max_rejects", &cfg.source.max_rejects);
  r.String(src, "source", "batch", &cfg.source.batch);
  r.Bool(src, "source", "incremental", &cfg.source.incremental);
  r.Int(src, "source", "concurrency", &cfg.source.concurrency);
  r.Bytes(src, "source", "max_line_size", &cfg.source.max_line_size);
  r.String(src, "source", "url", &cfg.source.url);
  r.String(src, "source", "publication", &cfg.source.publication);
  r.StringList(src, "source", "tables", &cfg.source.tables);
  r.String(src, "source", "slot", &cfg.source.slot);
  r.Int(src, "source", "max_table_sync_workers", &cfg.source.max_table_sync_workers);
  r.Int(src, "source", "table_error_retry_delay_ms", &cfg.source.table_error_retry_delay_ms);
  r.Int(src, "source", "table_error_retry_max_attempts", &cfg.source.table_error_retry_max_attempts);
  r.Int(src, "source", "publication_refresh_ms", &cfg.source.publication_refresh_ms);
  std::string stream_memory;
  r.String(src, "source", "stream_memory", &stream_memory);
  if (!stream_memory.empty()) {
    auto bytes = ParseBytes(stream_memory);
    if (!bytes.ok())
      r.Fail(bytes.status().WithContext("[source] stream_memory"));
    else
      cfg.source.stream_memory_bytes = *bytes;
  }
  int64_t modified_within_ms = 0;
  r.Millis(src, "source", "modified_within", &modified_within_ms);
  cfg.source.modified_within_seconds = (modified_within_ms + 999) / 1000;

  const toml::table* s3 = r.Section("s3", false);
  r.String(s3, "s3", "endpoint", &cfg.s3.endpoint);
  r.String(s3, "s3", "region", &cfg.s3.region);
  r.String(s3, "s3", "access_key_id", &cfg.s3.access_key_id);
  r.String(s3, "s3", "secret_access_key", &cfg.s3.secret_access_key);
  r.String(s3, "s3", "session_token", &cfg.s3.session_token);
  r.String(s3, "s3", "addressing", &cfg.s3.addressing);
  r.Millis(s3, "s3", "stall_timeout", &cfg.s3.stall_timeout_ms);
  if (cfg.s3.stall_timeout_ms < 1000) {
    r.Fail(Status::InvalidArgument("[s3] stall_timeout must be a duration of at least 1s"));
  }
  r.Millis(s3, "s3", "retry_max_elapsed", &cfg.s3.retry_max_elapsed_ms);
  if (!cfg.s3.addressing.empty() && cfg.s3.addressing != "path" && cfg.s3.addressing != "virtual") {
    r.Fail(Status::InvalidArgument("[s3] addressing must be \"path\" or \"virtual\""));
  }

  const toml::table* state = r.Section("state", false);
  cfg.state.configured = state != nullptr;
  r.String(state, "state", "url", &cfg.state.url);
  r.String(state, "state", "path", &cfg.state.path);
  if (!cfg.state.url.empty() && !cfg.state.path.empty()) {
    r.Fail(Status::InvalidArgument("[state] set either url (PostgreSQL) or path (SQLite file), not both"));
  }

  const toml::table* server = r.Section("server", false);
  cfg.server.configured = server != nullptr;
  r.String(server, "server", "listen", &cfg.server.listen);
  r.String(server, "server", "token", &cfg.server.token);

  const toml::table* tr = r.Section("transform", false);
  r.String(tr, "transform", "sql", &cfg.transform_sql);

  const toml::table* dst = r.Section("destination", true);
  r.String(dst, "destination", "type", &cfg.destination.type);
  r.String(dst, "destination", "url", &cfg.destination.url);
  r.String(dst, "destination", "table", &cfg.destination.table);
  r.String(dst, "destination", "mode", &cfg.destination.mode);
  r.StringList(dst, "destination", "key", &cfg.destination.key);
  r.String(dst, "destination", "path", &cfg.destination.path);
  r.String(dst, "destination", "format", &cfg.destination.format);
  r.String(dst, "destination", "schema", &cfg.destination.schema);

  const toml::table* batch = r.Section("batch", false);
  r.Int(batch, "batch", "max_rows", &cfg.batch.max_rows);
  r.Int(batch, "batch", "max_fill_ms", &cfg.batch.max_fill_ms);
  std::string max_bytes;
  r.String(batch, "batch", "max_bytes", &max_bytes);
  if (!max_bytes.empty()) {
    auto bytes = ParseBytes(max_bytes);
    if (!bytes.ok())
      r.Fail(bytes.status().WithContext("[batch] max_bytes"));
    else
      cfg.batch.max_bytes = *bytes;
  }
  std::optional<bool> create_table;
  r.Bool(dst, "destination", "create_table", &create_table);
  cfg.destination.create_table = create_table.value_or(true);

  const toml::table* eng = r.Section("engine", false);
  int64_t threads = 0, encode_threads = 0;
  r.Int(eng, "engine", "threads", &threads);
  r.Int(eng, "engine", "encode_threads", &encode_threads);
  if (threads < 0 || threads > 1024) {
    r.Fail(Status::InvalidArgument("[engine] threads must be between 0 (one per core) and 1024, got " +
                                   std::to_string(threads)));
  }
  if (encode_threads < 0 || encode_threads > 256) {
    r.Fail(
        Status::InvalidArgument("[engine] encode_threads must be between 0 (chosen from the core count) and "
                                "256, got " +
                                std::to_string(encode_threads)));
  }
  cfg.engine.threads = static_cast<int>(threads);
  cfg.engine.encode_threads = static_cast<int>(encode_threads);
  // DuckDB is given sizes in bytes that were checked here, never the text.
  int64_t memory_limit = 256 << 20;
  r.Bytes(eng, "engine", "memory_limit", &memory_limit);
  if (memory_limit < (16 << 20)) {
    r.Fail(Status::InvalidArgument("[engine] memory_limit must be at least 16MB (e.g. \"256MB\", \"2GiB\")"));
  }
  cfg.engine.memory_limit = std::to_string(memory_limit) + "B";
  r.String(eng, "engine", "temp_directory", &cfg.engine.temp_directory);
  int64_t stream_buffer = 16'000'000;
  r.Bytes(eng, "engine", "stream_buffer", &stream_buffer);
  if (stream_buffer < (64 << 10))
    r.Fail(Status::InvalidArgument("[engine] stream_buffer must be at least 64KB"));
  cfg.engine.stream_buffer = std::to_string(stream_buffer) + "B";
  r.Bytes(eng, "engine", "buffer", &cfg.engine.buffer_bytes);
  if (cfg.engine.buffer_bytes < (1 << 20))
    r.Fail(Status::InvalidArgument("[engine] buffer must be at least 1MB"));

  const toml::table* retry = r.Section("retry", false);
  r.Int(retry, "retry", "max_attempts", &cfg.retry.max_attempts);
  r.Millis(retry, "retry", "initial", &cfg.retry.initial_ms);
  r.Millis(retry, "retry", "max_delay", &cfg.retry.max_delay_ms);
  r.Millis(retry, "retry", "max_elapsed", &cfg.retry.max_elapsed_ms);
  if (cfg.retry.max_attempts < 1) r.Fail(Status::InvalidArgument("[retry] max_attempts must be at least 1"));

  const toml::table* sched = r.Section("schedule", false);
  if (sched) {
    ScheduleConfig s;
    r.String(sched, "schedule", "every", &s.every);
    r.String(sched, "schedule", "cron", &s.cron);
    r.String(sched, "schedule", "timezone", &s.timezone);
    std::optional<bool> run_on_start;
    r.Bool(sched, "schedule", "run_on_start", &run_on_start);
    s.run_on_start = run_on_start.value_or(true);
    if (!s.every.empty() && !s.cron.empty()) {
      r.Fail(Status::InvalidArgument("[schedule] set either every or cron, not both"));
    }
    if (!s.every.empty()) {
      auto ms = ParseDurationMillis(s.every);
      if (!ms.ok()) {
        r.Fail(ms.status().WithContext("[schedule] every"));
      } else if (*ms < 1000 || *ms % 1000 != 0) {
        r.Fail(Status::InvalidArgument("[schedule] every must be whole seconds, at least 1s"));
      } else {
        s.every_seconds = *ms / 1000;
      }
    }
    if (s.every.empty() && s.cron.empty()) r.Fail(Status::InvalidArgument("[schedule] needs every or cron"));
    if (r.status().ok()) {
      // The same checks `serve` makes: a bad cron field or time zone fails
      // `validate` too, not only a run.
      auto made = MakeSchedule(s.every_seconds, s.cron, s.timezone);
      if (!made.ok()) r.Fail(Status::InvalidArgument("[schedule]: " + made.status().message()));
    }
    cfg.schedule = s;
  }
  r.CheckUnknown();
  // Keys of another component type are errors, not silently ignored.
  const std::string& stype = cfg.source.type;
  const bool cdc = stype == "postgres_cdc";
  if (stype == "files") {
    r.OnlyKeys(src, "source", stype,
               {"path", "format", "header", "delimiter", "columns", "on_error", "rejects", "max_rejects",
                "batch", "incremental", "modified_within", "concurrency", "max_line_size"});
  } else if (cdc) {
    r.OnlyKeys(
        src, "source", stype,
        {"url", "publication", "tables", "slot", "max_table_sync_workers", "table_error_retry_delay_ms",
         "table_error_retry_max_attempts", "publication_refresh_ms", "stream_memory"});
  }
  const std::string& dtype = cfg.destination.type;
  if (cdc) {
    if (dtype == "postgres") r.OnlyKeys(dst, "destination", "postgres (changes)", {"url", "schema"});
    if (dtype == "file") r.OnlyKeys(dst, "destination", "file (change events)", {"path", "format"});
    if (dtype == "stdout") r.OnlyKeys(dst, "destination", "stdout (change events)", {"format"});
    if (dtype == "null" || dtype == "memory") r.OnlyKeys(dst, "destination", dtype, {});
  } else {
    if (dtype == "postgres") {
      r.OnlyKeys(dst, "destination", dtype, {"url", "table", "mode", "key", "create_table"});
    }
    if (dtype == "duckdb") r.OnlyKeys(dst, "destination", dtype, {"path", "table", "mode", "key"});
    if (dtype == "file") r.OnlyKeys(dst, "destination", dtype, {"path", "format"});
    if (dtype == "stdout") r.OnlyKeys(dst, "destination", dtype, {"format"});
    if (dtype == "null") r.OnlyKeys(dst, "destination", dtype, {});
    if (batch) r.Fail(Status::InvalidArgument("[batch] applies to postgres_cdc pipelines only"));
  }
  if (cdc && s3) r.Fail(Status::InvalidArgument("[s3] does not apply to postgres_cdc pipelines"));
  SLUICE_RETURN_IF_ERROR(r.status());
  // Connection strings libpq would misread fail here, naming the key and
  // never echoing the value (it holds the password).
  for (const auto& [key, url, postgres] :
       {std::tuple{"[source] url", &cfg.source.url, cfg.source.is_cdc()},
        std::tuple{"[state] url", &cfg.state.url, true},
        std::tuple{"[destination] url", &cfg.destination.url, cfg.destination.type == "postgres"}}) {
    if (postgres && !url->empty()) SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(*url).WithContext(key));
  }
  cfg.destination.s3 = cfg.s3;
  cfg.destination.temp_directory = cfg.engine.temp_directory;

  auto slash = file_name.find_last_of('/');
  std::string base = slash == std::string::npos ? file_name : file_name.substr(slash + 1);
  cfg.name = base.substr(0, base.rfind('.'));
  if (const auto* n = root.get("name"); n && n->is_string()) cfg.name = n->as_string()->get();
  if (cfg.source.is_cdc()) {
    SLUICE_RETURN_IF_ERROR(ValidateCdcConfig(&cfg));
    return cfg;
  }
  if (cfg.source.type != "files") {
    return Status::InvalidArgument("[source] type: unknown source type '" + cfg.source.type +
                                   "' (available: files, postgres_cdc)");
  }
  if (cfg.source.on_error != "fail" && cfg.source.on_error != "skip") {
    return Status::InvalidArgument("[source] on_error must be \"fail\" or \"skip\"");
  }
  if (cfg.source.batch != "all" && cfg.source.batch != "per_file") {
    return Status::InvalidArgument("[source] batch must be \"all\" or \"per_file\"");
  }
  if (cfg.source.concurrency < 1 || cfg.source.concurrency > 64) {
    return Status::InvalidArgument("[source] concurrency must be between 1 and 64");
  }
  if (cfg.source.path == "-" && cfg.source.is_incremental()) {
    return Status::InvalidArgument(
        "[source] incremental needs files; stdin cannot be remembered in a ledger");
  }
  if (cfg.destination.type == "file") {
    const std::string& out = cfg.destination.path;
    bool has_run = out.find("{run}") != std::string::npos;
    bool has_file = out.find("{file}") != std::string::npos;
    bool batch_job = cfg.source.is_incremental() || cfg.source.is_s3();
    if ((has_run || has_file) && !batch_job) {
      return Status::InvalidArgument(
          "[destination] path: {run} and {file} name the outputs of runs that remember their files; set "
          "[source] "
          "incremental = true, or write a fixed path");
    }
    if (has_file && cfg.source.batch != "per_file") {
      return Status::InvalidArgument(
          "[destination] path: {file} names the output of one input file; it needs [source] batch = "
          "\"per_file\" (with batch = \"all\" a run writes one output: use {run})");
    }
    if (cfg.source.batch == "per_file" && batch_job && !has_file) {
      return Status::InvalidArgument(
          "[destination] path: with batch = \"per_file\" every file is a load of its own and needs its own "
          "output; put {file} (the input's name) in the path, e.g. \"out/{file}.parquet\" ({run} alone would "
          "give every "
          "file of a run the same output)");
    }
    if (cfg.source.is_incremental() && !has_run && !has_file) {
      return Status::InvalidArgument(
          "[destination] path: an incremental source writes one output per load; put {run} (the run id) or, "
          "with batch = \"per_file\", {file} (the input's name) in the path, e.g. "
          "\"out/orders-{run}.parquet\"");
    }
  }
  if (cfg.destination.type.empty()) {
    return Status::InvalidArgument("[destination] type is required (postgres, duckdb, file, stdout, null)");
  }
  return cfg;
}

Result<PipelineConfig> LoadPipelineConfig(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read pipeline file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePipelineConfig(ss.str(), path, env);
}

}  // namespace sluice::service
