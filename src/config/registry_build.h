// How the registry stores and builds components of any kind, for sluice's
// own kinds whose interfaces are internal (sources, batch state stores) and
// for the public ones (registry.cc). A kind's factory is a
// std::function<Result<std::unique_ptr<T>>(const ConfigTable&)>.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include "sluice/registry.h"

namespace sluice::config {

/// Builds the component `table`'s type names: type errors first, then keys
/// the factory did not read, then the factory's own error.
template <typename T>
Result<std::unique_ptr<T>> BuildComponent(const Registry& registry, ComponentKind kind, const ConfigTable& table) {
  using Factory = std::function<Result<std::unique_ptr<T>>(const ConfigTable&)>;
  std::string type = registry.TypeOf(kind, table);
  SLUICE_RETURN_IF_ERROR(table.Check());
  std::string available;
  for (const auto& t : registry.Types(kind)) available += (available.empty() ? "" : ", ") + t;
  if (type.empty()) {
    return Status::InvalidArgument(table.Name() + " type is required (available: " + available + ")");
  }
  const auto* factory = static_cast<const Factory*>(registry.FindInternal(kind, type));
  if (factory == nullptr) {
    return Status::InvalidArgument(table.Name() + " type: unknown " + ComponentKindName(kind) + " type '" +
                                   type + "' (available: " + available + ")");
  }
  Result<std::unique_ptr<T>> made = (*factory)(table);
  SLUICE_RETURN_IF_ERROR(table.Check());
  const ComponentInfo* info = registry.Info(kind, type);
  SLUICE_RETURN_IF_ERROR(table.CheckAllRead(type, info ? info->keys : std::vector<std::string>{}));
  if (!made.ok()) return made.status();
  if (!*made) return Status::Internal(std::string(ComponentKindName(kind)) + " type '" + type + "' built nothing");
  return made;
}

/// Checks `table`'s keys against a component that is built later (a state
/// store opens when the first run starts): the type is registered, and the
/// table has only the keys its ComponentInfo lists. For a type registered
/// without a complete key list the factory checks its keys when it runs.
inline Status CheckComponentKeys(const Registry& registry, ComponentKind kind, const ConfigTable& table) {
  std::string type = registry.TypeOf(kind, table);
  SLUICE_RETURN_IF_ERROR(table.Check());
  const ComponentInfo* info = registry.Info(kind, type);
  if (info == nullptr) {
    std::string available;
    for (const auto& t : registry.Types(kind)) available += (available.empty() ? "" : ", ") + t;
    return Status::InvalidArgument(table.Name() + " type: unknown " + ComponentKindName(kind) + " type '" + type +
                                   "' (available: " + available + ")");
  }
  if (!info->keys_complete) return Status::OK();
  for (const auto& key : table.Keys()) {
    if (key == "type" || std::find(info->keys.begin(), info->keys.end(), key) != info->keys.end()) continue;
    std::vector<std::string> accepted = info->keys;
    std::sort(accepted.begin(), accepted.end());
    std::string list;
    for (const auto& k : accepted) list += (list.empty() ? "" : ", ") + k;
    return Status::InvalidArgument(table.Name() + " unknown key '" + key + "' for type '" + type + "'" +
                                   (list.empty() ? std::string(" (it accepts no keys)") : " (accepted: " + list + ")"));
  }
  return Status::OK();
}

/// Adds a factory of kind `kind`; BuildComponent<T> finds it again.
template <typename T>
Status AddComponent(Registry* registry, ComponentKind kind, std::string type,
                    std::function<Result<std::unique_ptr<T>>(const ConfigTable&)> factory, ComponentInfo info) {
  using F = std::function<Result<std::unique_ptr<T>>(const ConfigTable&)>;
  if (!factory) {
    return Status::InvalidArgument(std::string(ComponentKindName(kind)) + " type '" + type + "' has no factory");
  }
  return registry->AddInternal(kind, std::move(type), std::make_shared<const F>(std::move(factory)),
                               std::move(info));
}

}  // namespace sluice::config
