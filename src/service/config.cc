#include "service/config.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

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
      return Status::InvalidArgument(where + ": bad variable name '${" + body + "}'");
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

Result<int64_t> ParseDurationSeconds(const std::string& text) {
  size_t pos = 0;
  int64_t n = 0;
  try {
    n = std::stoll(text, &pos);
  } catch (...) {
    return Status::InvalidArgument("bad duration '" + text + "' (expected e.g. 30s, 5m, 24h)");
  }
  std::string unit = text.substr(pos);
  int64_t mult = 0;
  if (unit == "s" || unit.empty())
    mult = 1;
  else if (unit == "m")
    mult = 60;
  else if (unit == "h")
    mult = 3600;
  else if (unit == "d")
    mult = 86400;
  if (mult == 0 || n <= 0)
    return Status::InvalidArgument("bad duration '" + text + "' (expected e.g. 30s, 5m, 24h)");
  // Longer than any interval or timeout means anything; the limit also
  // keeps every use (milliseconds, the clock's nanoseconds) from overflowing.
  constexpr int64_t kMaxSeconds = int64_t{100} * 366 * 86400;
  if (n > kMaxSeconds / mult) {
    return Status::InvalidArgument("bad duration '" + text + "': longer than 100 years");
  }
  return n * mult;
}

Result<int64_t> ParseBytes(const std::string& text) {
  size_t pos = 0;
  double n = 0;
  try {
    n = std::stod(text, &pos);
  } catch (...) {
    return Status::InvalidArgument("bad size '" + text + "' (expected e.g. 8MB)");
  }
  std::string unit = text.substr(pos);
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
  else if (unit == "KIB")
    mult = 1024;
  else if (unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  const double bytes = n * mult;
  // NaN, infinity and sizes beyond int64_t are no sizes (and converting
  // them to an integer is undefined).
  if (mult == 0 || !(n >= 0) || !(bytes < 0x1p63)) {
    return Status::InvalidArgument("bad size '" + text + "' (expected e.g. 8MB)");
  }
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
  if (!cfg->transform_sql.empty()) {
    return Status::InvalidArgument(
        "[transform] is not supported for postgres_cdc sources (changes are applied as "
        "they are)");
  }
  if (cfg->schedule) {
    return Status::InvalidArgument("[schedule] does not apply to postgres_cdc: it replicates continuously");
  }
  const std::string& type = cfg->destination.type;
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
  std::string modified_within;
  r.String(src, "source", "modified_within", &modified_within);
  if (!modified_within.empty()) {
    auto secs = ParseDurationSeconds(modified_within);
    if (!secs.ok())
      r.Fail(secs.status().WithContext("[source] modified_within"));
    else
      cfg.source.modified_within_seconds = *secs;
  }

  const toml::table* s3 = r.Section("s3", false);
  r.String(s3, "s3", "endpoint", &cfg.s3.endpoint);
  r.String(s3, "s3", "region", &cfg.s3.region);
  r.String(s3, "s3", "access_key_id", &cfg.s3.access_key_id);
  r.String(s3, "s3", "secret_access_key", &cfg.s3.secret_access_key);
  r.String(s3, "s3", "session_token", &cfg.s3.session_token);
  r.String(s3, "s3", "addressing", &cfg.s3.addressing);
  std::string stall;
  r.String(s3, "s3", "stall_timeout", &stall);
  if (!stall.empty()) {
    auto secs = ParseDurationSeconds(stall);
    if (!secs.ok() || *secs < 1)
      r.Fail(Status::InvalidArgument("[s3] stall_timeout must be a duration of at least 1s"));
    else
      cfg.s3.stall_timeout_seconds = *secs;
  }
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
  cfg.engine.threads = static_cast<int>(threads);
  cfg.engine.encode_threads = static_cast<int>(encode_threads);
  r.String(eng, "engine", "memory_limit", &cfg.engine.memory_limit);
  r.String(eng, "engine", "temp_directory", &cfg.engine.temp_directory);
  r.String(eng, "engine", "stream_buffer", &cfg.engine.stream_buffer);
  if (auto b = ParseBytes(cfg.engine.stream_buffer); !b.ok())
    r.Fail(b.status().WithContext("[engine] stream_buffer"));
  std::string buffer;
  r.String(eng, "engine", "buffer", &buffer);
  if (!buffer.empty()) {
    auto b = ParseBytes(buffer);
    if (!b.ok())
      r.Fail(b.status().WithContext("[engine] buffer"));
    else
      cfg.engine.buffer_bytes = *b;
  }

  const toml::table* retry = r.Section("retry", false);
  r.Int(retry, "retry", "max_attempts", &cfg.retry.max_attempts);
  for (auto [key, target] : {std::pair{"initial", &cfg.retry.initial_seconds},
                             std::pair{"max_delay", &cfg.retry.max_delay_seconds},
                             std::pair{"max_elapsed", &cfg.retry.max_elapsed_seconds}}) {
    std::string text;
    r.String(retry, "retry", key, &text);
    if (text.empty()) continue;
    auto secs = ParseDurationSeconds(text);
    if (!secs.ok())
      r.Fail(secs.status().WithContext(std::string("[retry] ") + key));
    else
      *target = *secs;
  }
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
      auto secs = ParseDurationSeconds(s.every);
      if (!secs.ok())
        r.Fail(secs.status().WithContext("[schedule] every"));
      else
        s.every_seconds = *secs;
    }
    if (s.every.empty() && s.cron.empty()) r.Fail(Status::InvalidArgument("[schedule] needs every or cron"));
    cfg.schedule = s;
  }
  r.CheckUnknown();
  SLUICE_RETURN_IF_ERROR(r.status());
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
  if (cfg.source.is_incremental() && cfg.destination.type == "file") {
    bool per_load =
        cfg.destination.path.find("{run}") != std::string::npos ||
        (cfg.source.batch == "per_file" && cfg.destination.path.find("{file}") != std::string::npos);
    if (!per_load) {
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
