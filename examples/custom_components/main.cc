// custom_components: runs a PostgreSQL change data capture pipeline whose
// state store ("cached_file") and destination ("jsonl_log") are this
// program's own classes, registered next to sluice's built-in components.
//
//   custom_components PIPELINE.toml [--seconds N]   the pipeline of a TOML file
//   custom_components --from-code [--seconds N]     the same pipeline, built in code
//                                                   (the source URL from $SOURCE_URL)
//
// The pipeline replicates until Ctrl-C (SIGINT), SIGTERM or, with --seconds,
// until N seconds have passed; then it is stopped and the program exits 0.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sluice/sluice.h>

#include "cached_file_store.h"
#include "jsonl_log_destination.h"
#include "tutorial_log.h"

namespace {

constexpr std::string_view kName = "custom_components";

/// `text` as a TOML basic string ("..."), with quotes, backslashes and
/// control characters escaped.
std::string TomlString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04X",
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

/// The pipeline of example.toml, written by the program: a program that
/// embeds sluice can build its pipelines from its own settings.
std::string TutorialPipelineToml(const std::string& source_url) {
  return "[source]\n"
         "type = \"postgres_cdc\"\n"
         "url = " +
         TomlString(source_url) +
         "\n"
         "publication = \"tutorial_pub\"\n"
         "tables = [\"public.customers\", \"public.orders\"]\n"
         "slot = \"tutorial_slot\"\n"
         "\n"
         "[destination]\n"
         "type = \"jsonl_log\"\n"
         "path = \"tutorial_changes.jsonl\"\n"
         "\n"
         "[state]\n"
         "type = \"cached_file\"\n"
         "path = \"tutorial_state.txt\"\n";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

/// Runs the pipeline on a thread until a signal, the deadline (seconds > 0)
/// or its own end; returns the exit code.
int RunUntilStopped(sluice::Pipeline& pipeline, const sigset_t& stop_signals, int seconds) {
  std::atomic<bool> finished{false};
  sluice::Status result;
  std::thread runner([&] {
    result = pipeline.Run();
    finished = true;
  });
  tutorial::Log(kName, "pipeline '" + pipeline.name() + "' is running" +
                           (seconds > 0 ? " for " + std::to_string(seconds) + " seconds" : std::string()) +
                           "; Ctrl-C stops it");

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!finished) {
    timespec tick{0, 200 * 1000 * 1000};
    int signal_number = sigtimedwait(&stop_signals, nullptr, &tick);
    if (signal_number > 0) {
      tutorial::Log(kName,
                    std::string(signal_number == SIGINT ? "SIGINT" : "SIGTERM") + ": stopping the pipeline");
      pipeline.Stop();
      break;
    }
    if (seconds > 0 && std::chrono::steady_clock::now() >= deadline) {
      tutorial::Log(kName, std::to_string(seconds) + " seconds are up: stopping the pipeline");
      pipeline.Stop();
      break;
    }
  }
  runner.join();
  if (!result.ok()) {
    tutorial::Log(kName, "pipeline '" + pipeline.name() + "' failed: " + result.ToString());
    return 1;
  }
  tutorial::Log(kName, "pipeline '" + pipeline.name() + "' stopped cleanly");
  return 0;
}

/// From the TOML file, or (--from-code) from TOML text the program writes.
sluice::Result<std::unique_ptr<sluice::Pipeline>> BuildPipeline(const std::string& file, bool from_code,
                                                                const sluice::Registry& registry) {
  if (!from_code) return sluice::Pipeline::FromFile(file, registry);
  const char* url = std::getenv("SOURCE_URL");
  if (url == nullptr || *url == '\0') {
    return sluice::Status::InvalidArgument(
        "--from-code reads the source URL from $SOURCE_URL, which is not set");
  }
  return sluice::Pipeline::FromToml(TutorialPipelineToml(url), registry, "tutorial");
}

int Usage() {
  std::fprintf(stderr,
               "usage: custom_components PIPELINE.toml [--seconds N]\n"
               "       custom_components --from-code [--seconds N]   (source URL from $SOURCE_URL)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string file;
  bool from_code = false;
  int seconds = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--from-code") {
      from_code = true;
    } else if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
      if (seconds <= 0) return Usage();
    } else if (!arg.empty() && arg[0] != '-' && file.empty()) {
      file = arg;
    } else {
      return Usage();
    }
  }
  if (from_code == !file.empty()) return Usage();

  // SIGINT and SIGTERM are blocked in every thread (threads inherit the mask
  // of the thread that creates them, so block before sluice starts any) and
  // taken by sigtimedwait in RunUntilStopped: no signal handler needed.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // sluice's own components, and ours under their type names.
  sluice::Registry registry = sluice::Registry::WithBuiltins();
  for (sluice::Status status :
       {tutorial::RegisterCachedFileStore(registry), tutorial::RegisterJsonlLogDestination(registry)}) {
    if (!status.ok()) {
      tutorial::Log(kName, "cannot register: " + status.ToString());
      return 1;
    }
  }
  tutorial::Log(kName, "CDC state stores: " + Join(registry.Types(sluice::ComponentKind::kCdcStore)));
  tutorial::Log(kName, "CDC destinations: " + Join(registry.Types(sluice::ComponentKind::kCdcDestination)));

  sluice::Result<std::unique_ptr<sluice::Pipeline>> pipeline = BuildPipeline(file, from_code, registry);
  if (!pipeline.ok()) {
    tutorial::Log(kName, pipeline.status().ToString());
    return 1;
  }
  return RunUntilStopped(**pipeline, stop_signals, seconds);
}
