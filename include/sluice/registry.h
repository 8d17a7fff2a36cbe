// Registry: the components a pipeline file can name, by `type`.
//
// Every source, destination and state store of sluice is an entry here, put
// there by an explicit RegisterX(Registry&) call of its folder;
// Registry::WithBuiltins() holds them all. A program that embeds sluice adds
// its own components under new type names and runs pipelines that name them
// (see sluice/pipeline.h):
//
//   sluice::Registry registry = sluice::Registry::WithBuiltins();
//   SLUICE_RETURN_IF_ERROR(registry.AddCdcDestination("audit_log", [](const sluice::ConfigTable& t)
//       -> sluice::Result<std::unique_ptr<sluice::CdcDestination>> {
//     return std::make_unique<AuditLog>(t.GetString("path"));
//   }));
//
// A factory reads its table through ConfigTable (keys it does not read are
// errors, reported for it) and returns the component or an error that names
// the key at fault. Factories should not connect anywhere: that happens in
// Open()/Begin(), so that `sluice validate` and a restart report connection
// problems where they belong.
//
// Thread-safety: fill a registry from one thread, then share it read-only;
// Make* and the lookups are const and safe from several threads. A registry
// is a value: copies are independent.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sluice/cdc.h"
#include "sluice/config_table.h"
#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice {

enum class ComponentKind {
  kSource,          // [source]: what a pipeline reads; decides the kind of job
  kDestination,     // [destination] of a batch (file or stream) pipeline
  kCdcDestination,  // [destination] of a change data capture pipeline
  kStateStore,      // [state] of a batch pipeline: file ledger and run log
  kCdcStore,        // [state] of a change data capture pipeline
};

/// "source", "destination", "cdc destination", "state store", "cdc state store".
const char* ComponentKindName(ComponentKind kind);

/// What `sluice components` and error messages say about an entry.
struct ComponentInfo {
  std::string summary;            // one line
  std::vector<std::string> keys;  // the keys its table accepts (besides type)
  /// `keys` lists every key the component reads, so that its table can be
  /// checked before the factory runs (state stores open when the first run
  /// starts). Otherwise the factory's reads are the list.
  bool keys_complete = false;
};

class Registry {
 public:
  using DestinationFactory = std::function<Result<std::unique_ptr<Destination>>(const ConfigTable&)>;
  using CdcDestinationFactory = std::function<Result<std::unique_ptr<CdcDestination>>(const ConfigTable&)>;
  using CdcStoreFactory = std::function<Result<std::unique_ptr<CdcStore>>(const ConfigTable&)>;

  /// An empty registry.
  Registry();
  ~Registry();
  Registry(const Registry& other);
  Registry& operator=(const Registry& other);
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;

  /// Every built-in component.
  static Registry WithBuiltins();

  /// Adds a component. A type already registered for the same kind is an
  /// error (InvalidArgument), as is an empty type or factory.
  Status AddDestination(std::string type, DestinationFactory factory, ComponentInfo info = {});
  Status AddCdcDestination(std::string type, CdcDestinationFactory factory, ComponentInfo info = {});
  /// A CDC state store, chosen by [state] type = "...".
  Status AddCdcStore(std::string type, CdcStoreFactory factory, ComponentInfo info = {});

  /// Builds the component `table`'s type key names, then checks the table:
  /// type errors first, then keys the factory did not read, then the
  /// factory's own error. An unknown type lists the registered ones.
  Result<std::unique_ptr<Destination>> MakeDestination(const ConfigTable& table) const;
  Result<std::unique_ptr<CdcDestination>> MakeCdcDestination(const ConfigTable& table) const;
  Result<std::unique_ptr<CdcStore>> MakeCdcStore(const ConfigTable& table) const;

  /// Registered types of a kind, sorted.
  std::vector<std::string> Types(ComponentKind kind) const;
  /// nullptr when the type is not registered.
  const ComponentInfo* Info(ComponentKind kind, const std::string& type) const;
  /// The type of `table`: its `type` key, or, when absent, what the kind's
  /// default rule says (a [state] with url is "postgres"), or "".
  std::string TypeOf(ComponentKind kind, const ConfigTable& table) const;

  /// Kinds whose interfaces are not public yet (sources, batch state stores)
  /// are registered through these by sluice itself; `factory` points at a
  /// std::function whose signature the kind's folder defines.
  Status AddInternal(ComponentKind kind, std::string type, std::shared_ptr<const void> factory,
                     ComponentInfo info);
  const void* FindInternal(ComponentKind kind, const std::string& type) const;
  /// The type a table of `kind` has when it names none.
  void SetDefaultType(ComponentKind kind, std::function<std::string(const ConfigTable&)> rule);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
