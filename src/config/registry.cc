#include "sluice/registry.h"

#include <map>
#include "config/registry_build.h"

namespace sluice {

const char* ComponentKindName(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::kSource:
      return "source";
    case ComponentKind::kDestination:
      return "destination";
    case ComponentKind::kCdcDestination:
      return "cdc destination";
    case ComponentKind::kStateStore:
      return "state store";
    case ComponentKind::kCdcStore:
      return "cdc state store";
  }
  return "component";
}

struct Registry::Impl {
  struct Entry {
    std::shared_ptr<const void> factory;  // points at the kind's std::function
    ComponentInfo info;
  };
  std::map<ComponentKind, std::map<std::string, Entry>> entries;
  std::map<ComponentKind, std::function<std::string(const ConfigTable&)>> default_types;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;
Registry::Registry(const Registry& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
Registry& Registry::operator=(const Registry& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

Status Registry::AddInternal(ComponentKind kind, std::string type, std::shared_ptr<const void> factory,
                             ComponentInfo info) {
  if (type.empty()) return Status::InvalidArgument(std::string("a ") + ComponentKindName(kind) + " needs a type name");
  if (!factory) {
    return Status::InvalidArgument(std::string(ComponentKindName(kind)) + " type '" + type + "' has no factory");
  }
  auto& of_kind = impl_->entries[kind];
  if (of_kind.count(type)) {
    return Status::InvalidArgument(std::string(ComponentKindName(kind)) + " type '" + type +
                                   "' is already registered");
  }
  of_kind.emplace(std::move(type), Impl::Entry{std::move(factory), std::move(info)});
  return Status::OK();
}

const void* Registry::FindInternal(ComponentKind kind, const std::string& type) const {
  auto of_kind = impl_->entries.find(kind);
  if (of_kind == impl_->entries.end()) return nullptr;
  auto it = of_kind->second.find(type);
  return it == of_kind->second.end() ? nullptr : it->second.factory.get();
}

void Registry::SetDefaultType(ComponentKind kind, std::function<std::string(const ConfigTable&)> rule) {
  impl_->default_types[kind] = std::move(rule);
}

std::vector<std::string> Registry::Types(ComponentKind kind) const {
  std::vector<std::string> out;
  auto of_kind = impl_->entries.find(kind);
  if (of_kind == impl_->entries.end()) return out;
  for (const auto& [type, entry] : of_kind->second) out.push_back(type);
  return out;
}

const ComponentInfo* Registry::Info(ComponentKind kind, const std::string& type) const {
  auto of_kind = impl_->entries.find(kind);
  if (of_kind == impl_->entries.end()) return nullptr;
  auto it = of_kind->second.find(type);
  return it == of_kind->second.end() ? nullptr : &it->second.info;
}

std::string Registry::TypeOf(ComponentKind kind, const ConfigTable& table) const {
  std::string type = table.GetString("type");
  if (!type.empty()) return type;
  auto rule = impl_->default_types.find(kind);
  return rule == impl_->default_types.end() ? "" : rule->second(table);
}


Status Registry::AddDestination(std::string type, DestinationFactory factory, ComponentInfo info) {
  return config::AddComponent(this, ComponentKind::kDestination, std::move(type), std::move(factory), std::move(info));
}
Status Registry::AddCdcDestination(std::string type, CdcDestinationFactory factory, ComponentInfo info) {
  return config::AddComponent(this, ComponentKind::kCdcDestination, std::move(type), std::move(factory), std::move(info));
}
Status Registry::AddCdcStore(std::string type, CdcStoreFactory factory, ComponentInfo info) {
  return config::AddComponent(this, ComponentKind::kCdcStore, std::move(type), std::move(factory), std::move(info));
}

Result<std::unique_ptr<Destination>> Registry::MakeDestination(const ConfigTable& table) const {
  return config::BuildComponent<Destination>(*this, ComponentKind::kDestination, table);
}
Result<std::unique_ptr<CdcDestination>> Registry::MakeCdcDestination(const ConfigTable& table) const {
  return config::BuildComponent<CdcDestination>(*this, ComponentKind::kCdcDestination, table);
}
Result<std::unique_ptr<CdcStore>> Registry::MakeCdcStore(const ConfigTable& table) const {
  return config::BuildComponent<CdcStore>(*this, ComponentKind::kCdcStore, table);
}

}  // namespace sluice
