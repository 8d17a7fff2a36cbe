// Pipeline: one pipeline file, built from a registry, run from code.
//
//   auto pipeline = sluice::Pipeline::FromFile("orders.toml", sluice::Registry::WithBuiltins());
//   if (!pipeline.ok()) { ... pipeline.status().message() ... }
//   sluice::Status status = (*pipeline)->Run();
//
// A batch pipeline's Run() is one run over what is new (its [schedule] is
// for `sluice serve`, and is ignored here); a postgres_cdc pipeline's Run()
// replicates until Stop(). Building a pipeline parses and checks the whole
// file (unknown keys, types, values) and builds its components, but
// connects nowhere: connection problems surface from Run().
//
// Thread-safety: call Run() from one thread at a time. Stop() and
// StatusJson() may be called from any thread, also while Run() is running.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "sluice/registry.h"
#include "sluice/status.h"

namespace sluice {

class Pipeline {
 public:
  /// The pipeline keeps what it needs from the registry: passing
  /// Registry::WithBuiltins() inline is fine. The name is the file's name
  /// without its extension, or the file's name = "...".
  static Result<std::unique_ptr<Pipeline>> FromFile(const std::string& path, const Registry& registry);
  static Result<std::unique_ptr<Pipeline>> FromToml(std::string_view toml, const Registry& registry,
                                                    std::string name = "pipeline");
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// Batch: one run; Cancelled when Stop() interrupted it (nothing of that
  /// load was committed). postgres_cdc: replicates until Stop(), then OK.
  Status Run();
  /// Asks Run() to return; thread-safe, also before Run() started (Run()
  /// then returns at once). A stopped pipeline does not run again.
  void Stop();
  /// What /status shows for this pipeline (a JSON object).
  std::string StatusJson() const;
  /// `sluice validate`: checks the source, the state store and the
  /// destination and compiles the SQL, changing nothing; returns a report.
  Result<std::string> Validate();
  /// The pipeline's name.
  const std::string& name() const;

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
