#include "service/cli.h"

#include <duckdb.h>
#include <libpq-fe.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/cancellation.h"
#include "core/human_format.h"
#include "core/retry.h"
#include "service/config.h"
#include "service/serve.h"
#include "service/version.h"

namespace sluice::service {

namespace {

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

/// %* in a pattern: the message as the inside of a JSON string.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string escaped = JsonEscape(std::string(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

void SetUpLogging(const std::string& format, bool quiet) {
  auto logger = spdlog::stderr_logger_mt("sluice");
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int RunCommand(const std::string& file, bool once, ProgressMode progress) {
  Registry registry = Registry::WithBuiltins();
  auto pipeline = LoadPipelineFile(file, registry);
  if (!pipeline.ok()) {
    spdlog::error("{}", pipeline.status().message());
    return ExitCodeFor(pipeline.status());
  }
  const PipelineConfig& config = (*pipeline)->config;
  const bool continuous = (*pipeline)->job->continuous();
  ServeOptions options;
  options.once = once || !config.schedule;
  options.progress = progress;
  // `run` serves the monitoring endpoints only when the file asks for them.
  options.listen = config.server.configured && (!options.once || continuous) ? "" : "off";
  return ServePipelines({file}, options);
}

int ServeCommand(const std::vector<std::string>& files, const std::string& listen) {
  ServeOptions options;
  options.listen = listen;
  return ServePipelines(files, options);
}

int ValidateCommand(const std::string& file) {
  Registry registry = Registry::WithBuiltins();
  auto pipeline = LoadPipelineFile(file, registry);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s: invalid: %s\n", file.c_str(), pipeline.status().message().c_str());
    return ExitCodeFor(pipeline.status());
  }
  auto report = (*pipeline)->job->Validate();
  if (!report.ok()) {
    std::fprintf(stderr, "%s: invalid: %s\n", file.c_str(), report.status().message().c_str());
    return ExitCodeFor(report.status());
  }
  std::printf("%s: OK\n%s", file.c_str(), report->c_str());
  return 0;
}

/// `sluice components`: every registered type with its keys.
int ComponentsCommand() {
  Registry registry = Registry::WithBuiltins();
  const std::pair<ComponentKind, const char*> kinds[] = {
      {ComponentKind::kSource, "[source]"},
      {ComponentKind::kDestination, "[destination] of batch pipelines"},
      {ComponentKind::kCdcDestination, "[destination] of postgres_cdc pipelines"},
      {ComponentKind::kStateStore, "[state] of batch pipelines"},
      {ComponentKind::kCdcStore, "[state] of postgres_cdc pipelines"}};
  for (const auto& [kind, title] : kinds) {
    std::printf("%s\n", title);
    for (const auto& type : registry.Types(kind)) {
      const ComponentInfo* info = registry.Info(kind, type);
      std::string keys;
      for (const auto& k : info->keys) keys += (keys.empty() ? "" : ", ") + k;
      std::printf("  type = \"%s\"\n      %s\n      keys: %s\n", type.c_str(), info->summary.c_str(),
                  keys.empty() ? "(none)" : keys.c_str());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int CliMain(int argc, char** argv) {
  CLI::App app{
      "sluice: a fast ETL engine: files (local or S3), streams and HTTP endpoints -> SQL (DuckDB) -> "
      "PostgreSQL, DuckDB, files, HTTP APIs; scheduled runs load each new file once; PostgreSQL change data "
      "capture (postgres_cdc) into PostgreSQL, JSON lines or HTTP"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand too
  app.set_version_flag("--version", std::string("sluice ") + kVersion);
  std::string log_format = "text";
  bool quiet = false;
  app.add_option("--log-format", log_format, "Log format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-q,--quiet", quiet, "Only log warnings and errors");

  std::string run_file;
  bool once = false;
  std::string progress = "auto";
  auto* run =
      app.add_subcommand("run", "Run a pipeline (once, on its [schedule], or continuously for postgres_cdc)");
  run->add_option("FILE", run_file, "Pipeline TOML file")->required();
  run->add_flag("--once", once, "Run a single time even when the file has a schedule");
  run->add_option("--progress", progress, "Progress line on stderr: auto (when a terminal), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}));

  std::string validate_file;
  auto* validate = app.add_subcommand(
      "validate", "Check a pipeline file, connect to its destination and compile its SQL, loading nothing");
  validate->add_option("FILE", validate_file, "Pipeline TOML file")->required();

  std::vector<std::string> serve_files;
  std::string listen;
  auto* serve = app.add_subcommand(
      "serve", "Run pipelines on their schedules and serve /health, /ready, /status and /metrics");
  serve->add_option("FILE", serve_files, "Pipeline TOML files")->required();
  serve->add_option(
      "--listen", listen,
      "Monitoring address host:port (default: [server] listen, else 127.0.0.1:9187; off: none)");

  auto* version = app.add_subcommand("version", "Print the versions of sluice and its engines");
  auto* components = app.add_subcommand(
      "components", "List the source, destination and state store types a pipeline file can name, with their keys");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  SetUpLogging(log_format, quiet);
  if (*version) {
    std::printf("sluice %s\nDuckDB %s\nlibpq %d\n", kVersion, duckdb_library_version(), PQlibVersion());
    return 0;
  }
  if (*validate) return ValidateCommand(validate_file);
  if (*components) return ComponentsCommand();
  if (*serve) return ServeCommand(serve_files, listen);
  ProgressMode mode = progress == "always"  ? ProgressMode::kAlways
                      : progress == "never" ? ProgressMode::kNever
                                            : ProgressMode::kAuto;
  return RunCommand(run_file, once, mode);
}

}  // namespace sluice::service
