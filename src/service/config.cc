#include "service/config.h"

#include <fstream>
#include <sstream>

#include "service/schedule.h"

namespace sluice::service {

namespace {

using config::ConfigDocument;

/// The sections the service reads itself.
void ReadEngine(const ConfigTable& eng, EngineSettings* out) {
  int64_t threads = eng.GetInt("threads", 0);
  int64_t encode_threads = eng.GetInt("encode_threads", 0);
  if (threads < 0 || threads > 1024) {
    eng.Fail("threads", "must be between 0 (one per core) and 1024, got " + std::to_string(threads));
  }
  if (encode_threads < 0 || encode_threads > 256) {
    eng.Fail("encode_threads",
             "must be between 0 (chosen from the core count) and 256, got " + std::to_string(encode_threads));
  }
  out->threads = static_cast<int>(threads);
  out->encode_threads = static_cast<int>(encode_threads);
  // DuckDB is given sizes in bytes that were checked here, never the text.
  int64_t memory_limit = eng.GetBytes("memory_limit", 256 << 20);
  if (memory_limit < (16 << 20)) eng.Fail("memory_limit", "must be at least 16MB (e.g. \"256MB\", \"2GiB\")");
  out->memory_limit = std::to_string(memory_limit) + "B";
  out->temp_directory = eng.GetString("temp_directory");
  int64_t stream_buffer = eng.GetBytes("stream_buffer", 16'000'000);
  if (stream_buffer < (64 << 10)) eng.Fail("stream_buffer", "must be at least 64KB");
  out->stream_buffer = std::to_string(stream_buffer) + "B";
  out->buffer_bytes = eng.GetBytes("buffer", out->buffer_bytes);
  if (out->buffer_bytes < (1 << 20)) eng.Fail("buffer", "must be at least 1MB");
}

void ReadRetry(const ConfigTable& retry, RetrySettings* out) {
  out->max_attempts = retry.GetInt("max_attempts", out->max_attempts);
  out->initial_ms = retry.GetMillis("initial", out->initial_ms);
  out->max_delay_ms = retry.GetMillis("max_delay", out->max_delay_ms);
  out->max_elapsed_ms = retry.GetMillis("max_elapsed", out->max_elapsed_ms);
  if (out->max_attempts < 1) retry.Fail("max_attempts", "must be at least 1");
}

Result<std::optional<ScheduleConfig>> ReadSchedule(const ConfigDocument& doc) {
  const ConfigTable& sched = doc.Section("schedule");
  if (!doc.HasSection("schedule")) return std::optional<ScheduleConfig>();
  ScheduleConfig s;
  s.every = sched.GetString("every");
  s.cron = sched.GetString("cron");
  s.timezone = sched.GetString("timezone");
  s.run_on_start = sched.GetBool("run_on_start", true);
  SLUICE_RETURN_IF_ERROR(sched.Check());
  SLUICE_RETURN_IF_ERROR(sched.CheckAllRead(""));
  if (!s.every.empty() && !s.cron.empty()) {
    return Status::InvalidArgument("[schedule] set either every or cron, not both");
  }
  if (!s.every.empty()) {
    auto ms = config::ParseDurationMillis(s.every);
    if (!ms.ok()) return ms.status().WithContext("[schedule] every");
    if (*ms < 1000 || *ms % 1000 != 0) {
      return Status::InvalidArgument("[schedule] every must be whole seconds, at least 1s");
    }
    s.every_seconds = *ms / 1000;
  }
  if (s.every.empty() && s.cron.empty()) return Status::InvalidArgument("[schedule] needs every or cron");
  // The same checks `serve` makes: a bad cron field or time zone fails
  // `validate` too, not only a run.
  auto made = MakeSchedule(s.every_seconds, s.cron, s.timezone);
  if (!made.ok()) return Status::InvalidArgument("[schedule]: " + made.status().message());
  return std::optional<ScheduleConfig>(s);
}

Result<AlertConfig> ReadAlert(const ConfigTable& t, bool present) {
  AlertConfig c;
  c.configured = present;
  if (!present) return c;
  c.url = t.GetString("url");
  std::vector<std::string> on =
      t.Has("on") ? t.GetStringList("on") : std::vector<std::string>{"failure", "recovery"};
  (void)t.GetStringList("on");
  c.slow_after_ms = t.GetMillis("slow_after", 0);
  c.headers = t.GetStringMap("headers");
  c.timeout_ms = t.GetMillis("timeout", c.timeout_ms);
  SLUICE_RETURN_IF_ERROR(t.Check());
  SLUICE_RETURN_IF_ERROR(t.CheckAllRead(""));
  if (c.url.empty()) return Status::InvalidArgument("[alert] url is required");
  if (!c.url.starts_with("http://") && !c.url.starts_with("https://")) {
    return Status::InvalidArgument("[alert] url must be an http:// or https:// URL");
  }
  c.on_failure = c.on_recovery = c.on_slow = false;
  for (const auto& e : on) {
    if (e == "failure") {
      c.on_failure = true;
    } else if (e == "recovery") {
      c.on_recovery = true;
    } else if (e == "slow") {
      c.on_slow = true;
    } else {
      return Status::InvalidArgument("[alert] on: unknown event \"" + e +
                                     "\" (expected failure, recovery, slow)");
    }
  }
  if (c.on_slow && c.slow_after_ms <= 0) {
    return Status::InvalidArgument("[alert] on lists \"slow\": set slow_after (e.g. \"30m\")");
  }
  if (!c.on_slow && c.slow_after_ms > 0) {
    return Status::InvalidArgument("[alert] slow_after is set but on does not list \"slow\"");
  }
  return c;
}

/// The sections the service reads, checked.
Status ReadServiceSections(const ConfigDocument& doc, PipelineConfig* cfg) {
  const ConfigTable& eng = doc.Section("engine");
  ReadEngine(eng, &cfg->engine);
  SLUICE_RETURN_IF_ERROR(eng.Check());
  SLUICE_RETURN_IF_ERROR(eng.CheckAllRead(""));
  const ConfigTable& retry = doc.Section("retry");
  ReadRetry(retry, &cfg->retry);
  SLUICE_RETURN_IF_ERROR(retry.Check());
  SLUICE_RETURN_IF_ERROR(retry.CheckAllRead(""));
  SLUICE_ASSIGN_OR_RETURN(cfg->schedule, ReadSchedule(doc));
  const ConfigTable& server = doc.Section("server");
  cfg->server.configured = doc.HasSection("server");
  cfg->server.listen = server.GetString("listen", cfg->server.listen);
  cfg->server.token = server.GetString("token");
  SLUICE_RETURN_IF_ERROR(server.Check());
  SLUICE_RETURN_IF_ERROR(server.CheckAllRead(""));
  SLUICE_ASSIGN_OR_RETURN(cfg->alert, ReadAlert(doc.Section("alert"), doc.HasSection("alert")));
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<LoadedPipeline>> LoadPipelineText(std::string_view toml, const std::string& file_name,
                                                         const Registry& registry, const std::string& name,
                                                         MetricsRegistry* metrics,
                                                         const config::EnvLookup& env) {
  auto loaded = std::make_unique<LoadedPipeline>();
  loaded->registry = registry;
  SLUICE_ASSIGN_OR_RETURN(loaded->doc, ConfigDocument::Parse(toml, file_name, env));
  ConfigDocument& doc = *loaded->doc;
  PipelineConfig& cfg = loaded->config;
  cfg.file = file_name;
  if (!name.empty()) {
    cfg.name = name;
  } else {
    auto slash = file_name.find_last_of('/');
    std::string base = slash == std::string::npos ? file_name : file_name.substr(slash + 1);
    cfg.name = base.substr(0, base.rfind('.'));
  }
  for (const auto& key : doc.TopKeys()) {
    if (doc.HasSection(key)) continue;
    if (key == "name" && doc.TopString("name")) continue;
    return Status::InvalidArgument("unknown key " + key + " at the top of " + file_name +
                                   " (only name = \"...\" and [sections] belong there)");
  }
  if (auto n = doc.TopString("name")) cfg.name = *n;
  doc.SetPipelineName(cfg.name);
  SLUICE_RETURN_IF_ERROR(ReadServiceSections(doc, &cfg));

  if (!doc.HasSection("source")) return Status::InvalidArgument("missing [source] section");
  if (!doc.HasSection("destination")) return Status::InvalidArgument("missing [destination] section");
  const ConfigTable& source = doc.Section("source");
  cfg.source_type = loaded->registry.TypeOf(ComponentKind::kSource, source);
  SLUICE_RETURN_IF_ERROR(source.Check());
  const auto* factory =
      static_cast<const JobFactory*>(loaded->registry.FindInternal(ComponentKind::kSource, cfg.source_type));
  if (factory == nullptr) {
    std::string available;
    for (const auto& t : loaded->registry.Types(ComponentKind::kSource))
      available += (available.empty() ? "" : ", ") + t;
    if (cfg.source_type.empty())
      return Status::InvalidArgument("[source] type is required (available: " + available + ")");
    return Status::InvalidArgument("[source] type: unknown source type '" + cfg.source_type +
                                   "' (available: " + available + ")");
  }
  JobContext context;
  context.pipeline = cfg.name;
  context.file = file_name;
  context.source = &source;
  context.section = [&doc](std::string_view section) -> const ConfigTable& { return doc.Section(section); };
  context.has_section = [&doc](std::string_view section) { return doc.HasSection(section); };
  context.registry = &loaded->registry;
  context.engine = cfg.engine;
  context.retry = cfg.retry;
  context.metrics = metrics;
  auto job = (*factory)(context);
  SLUICE_RETURN_IF_ERROR(source.Check());
  const ComponentInfo* info = loaded->registry.Info(ComponentKind::kSource, cfg.source_type);
  SLUICE_RETURN_IF_ERROR(
      source.CheckAllRead(cfg.source_type, info ? info->keys : std::vector<std::string>{}));
  if (!job.ok()) return job.status();
  loaded->job = std::move(job).value();
  // Sections that belong to no component of this pipeline, and keys of the
  // shared ones ([s3], [transform], ...) that nobody read.
  for (const auto& section : doc.UnreadSections()) {
    return Status::InvalidArgument("unknown section [" + section +
                                   "]: no part of this pipeline reads it ([source] type " + cfg.source_type +
                                   ")");
  }
  for (const auto& section : doc.SectionsAsked()) {
    if (section == "source" || section == "destination" || section == "state") continue;
    const ConfigTable& table = doc.Section(section);
    SLUICE_RETURN_IF_ERROR(table.Check());
    SLUICE_RETURN_IF_ERROR(table.CheckAllRead(""));
  }
  return loaded;
}

Result<std::unique_ptr<LoadedPipeline>> LoadPipelineFile(const std::string& path, const Registry& registry,
                                                         MetricsRegistry* metrics,
                                                         const config::EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read pipeline file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadPipelineText(ss.str(), path, registry, "", metrics, env);
}

}  // namespace sluice::service
