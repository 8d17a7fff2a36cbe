#include "sluice/config_table.h"

#include <toml++/toml.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <tuple>

#include "config/config_document.h"

namespace sluice {

struct ConfigTable::Impl {
  toml::table root;
  config::EnvLookup env;
  std::string file;
  std::string pipeline;
  /// Top-level tables handed out, by name; shared by every component that
  /// asks (the files source and a file destination both read [s3]).
  std::map<std::string, std::unique_ptr<ConfigTable>, std::less<>> sections;

  const ConfigTable& SectionTable(std::string_view name) {
    auto it = sections.find(name);
    if (it != sections.end()) return *it->second;
    const toml::node* node = root.get(name);
    const void* table = node && node->is_table() ? node->as_table() : nullptr;
    auto made = std::make_unique<ConfigTable>(this, table, std::string(name), nullptr);
    if (node && !node->is_table()) made->Fail("", "must be a table");
    return *sections.emplace(std::string(name), std::move(made)).first->second;
  }
};

namespace {

const toml::table* AsTable(const void* t) { return static_cast<const toml::table*>(t); }

/// Keys of a TOML table in the order written (toml++ keeps them sorted).
std::vector<std::pair<std::string, const toml::node*>> InWrittenOrder(const toml::table& t) {
  std::vector<std::tuple<uint32_t, uint32_t, std::string, const toml::node*>> keys;
  for (const auto& [k, v] : t) {
    keys.emplace_back(k.source().begin.line, k.source().begin.column, std::string(k.str()), &v);
  }
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  std::vector<std::pair<std::string, const toml::node*>> out;
  for (auto& [line, column, key, node] : keys) out.emplace_back(std::move(key), node);
  return out;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

ConfigTable::ConfigTable(std::string describe) {
  if (describe.size() >= 2 && describe.front() == '[' && describe.back() == ']')
    describe = describe.substr(1, describe.size() - 2);
  path_ = std::move(describe);
}

ConfigTable::ConfigTable(Impl* doc, const void* table, std::string path, const ConfigTable* parent)
    : doc_(doc), table_(table), path_(std::move(path)), parent_(parent) {}

ConfigTable::~ConfigTable() = default;

std::string ConfigTable::PipelineName() const { return doc_ ? doc_->pipeline : ""; }

std::string ConfigTable::Name() const { return "[" + path_ + "]"; }

std::string ConfigTable::Describe() const {
  return Name() + (doc_ && !doc_->file.empty() ? " in " + doc_->file : "");
}

bool ConfigTable::Has(std::string_view key) const { return table_ && AsTable(table_)->get(key) != nullptr; }

std::vector<std::string> ConfigTable::Keys() const {
  std::vector<std::string> out;
  if (!table_) return out;
  for (auto& [k, v] : InWrittenOrder(*AsTable(table_))) out.push_back(k);
  return out;
}

std::vector<std::string> ConfigTable::KeysRead() const {
  std::vector<std::string> out = read_;
  std::sort(out.begin(), out.end());
  return out;
}

void ConfigTable::Fail(std::string_view key, std::string message) const {
  std::string where = key.empty() ? Name() : Name() + " " + std::string(key);
  const toml::node* node = nullptr;
  if (table_ && !key.empty()) node = AsTable(table_)->get(key);
  std::string line;
  if (node && node->source().begin.line > 0) {
    line = " (" + (doc_ && !doc_->file.empty() ? doc_->file + " " : std::string()) + "line " +
           std::to_string(node->source().begin.line) + ")";
  }
  // ": reason" and ".subkey ..." attach to the key without a space.
  if (!message.empty() && message[0] != ':' && message[0] != '.') message = " " + message;
  errors_.push_back(where + message + line);
}

namespace {

/// Marks `key` as read and returns its node, or nullptr when absent.
const toml::node* Read(const void* table, std::vector<std::string>* read, std::string_view key) {
  if (std::find(read->begin(), read->end(), key) == read->end()) read->emplace_back(key);
  return table ? AsTable(table)->get(key) : nullptr;
}

}  // namespace

std::string ConfigTable::GetString(std::string_view key, std::string_view fallback) const {
  const toml::node* n = Read(table_, &read_, key);
  if (!n) return std::string(fallback);
  if (!n->is_string()) {
    Fail(key, "must be a string");
    return std::string(fallback);
  }
  config::EnvLookup env = doc_ ? doc_->env : config::EnvLookup(config::GetEnv);
  auto v = config::Interpolate(n->as_string()->get(), env, Name() + " " + std::string(key));
  if (!v.ok()) {
    errors_.push_back(v.status().message());
    return std::string(fallback);
  }
  return *v;
}

int64_t ConfigTable::GetInt(std::string_view key, int64_t fallback) const {
  const toml::node* n = Read(table_, &read_, key);
  if (!n) return fallback;
  if (n->is_integer()) return n->as_integer()->get();
  if (n->is_string()) {
    std::string s = GetString(key);
    try {
      size_t pos = 0;
      int64_t v = std::stoll(s, &pos);
      if (pos == s.size() && !s.empty()) return v;
    } catch (...) {
    }
  }
  Fail(key, "must be a whole number");
  return fallback;
}

bool ConfigTable::GetBool(std::string_view key, bool fallback) const {
  const toml::node* n = Read(table_, &read_, key);
  if (!n) return fallback;
  if (n->is_boolean()) return n->as_boolean()->get();
  if (n->is_string()) {
    std::string s = GetString(key);
    if (s == "true") return true;
    if (s == "false") return false;
  }
  Fail(key, "must be true or false");
  return fallback;
}

std::vector<std::string> ConfigTable::GetStringList(std::string_view key) const {
  const toml::node* n = Read(table_, &read_, key);
  std::vector<std::string> out;
  if (!n) return out;
  if (n->is_string()) {
    out.push_back(GetString(key));
    return out;
  }
  auto bad = [&] {
    Fail(key, "must be a list of strings");
    return std::vector<std::string>{};
  };
  if (!n->is_array()) return bad();
  config::EnvLookup env = doc_ ? doc_->env : config::EnvLookup(config::GetEnv);
  for (const auto& item : *n->as_array()) {
    if (!item.is_string()) return bad();
    auto v = config::Interpolate(item.as_string()->get(), env, Name() + " " + std::string(key));
    if (!v.ok()) {
      errors_.push_back(v.status().message());
      return {};
    }
    out.push_back(*v);
  }
  return out;
}

int64_t ConfigTable::GetBytes(std::string_view key, int64_t fallback) const {
  const toml::node* n = Read(table_, &read_, key);
  if (!n) return fallback;
  if (n->is_integer()) return n->as_integer()->get();
  if (!n->is_string()) {
    Fail(key, "must be a size such as \"8MB\"");
    return fallback;
  }
  auto bytes = config::ParseBytes(GetString(key));
  if (!bytes.ok()) {
    Fail(key, ": " + bytes.status().message());
    return fallback;
  }
  return *bytes;
}

int64_t ConfigTable::GetMillis(std::string_view key, int64_t fallback) const {
  const toml::node* n = Read(table_, &read_, key);
  if (!n) return fallback;
  std::string text;
  if (n->is_integer()) {
    text = std::to_string(n->as_integer()->get()) + "s";
  } else if (n->is_string()) {
    text = GetString(key);
  } else {
    Fail(key, "must be a duration such as \"30s\"");
    return fallback;
  }
  auto ms = config::ParseDurationMillis(text);
  if (!ms.ok()) {
    Fail(key, ": " + ms.status().message());
    return fallback;
  }
  return *ms;
}

std::vector<std::pair<std::string, std::string>> ConfigTable::GetStringMap(std::string_view key) const {
  const toml::node* n = Read(table_, &read_, key);
  std::vector<std::pair<std::string, std::string>> out;
  if (!n) return out;
  if (!n->is_table()) {
    Fail(key, "must be a table of name = \"value\"");
    return out;
  }
  config::EnvLookup env = doc_ ? doc_->env : config::EnvLookup(config::GetEnv);
  for (auto& [name, value] : InWrittenOrder(*n->as_table())) {
    if (!value->is_string()) {
      Fail(key, "." + name + " must be a string");
      return {};
    }
    auto v = config::Interpolate(value->as_string()->get(), env, Name() + " " + std::string(key));
    if (!v.ok()) {
      errors_.push_back(v.status().message());
      return {};
    }
    out.emplace_back(name, *v);
  }
  return out;
}

const ConfigTable& ConfigTable::Section(std::string_view name) const {
  for (const auto& [child, table] : children_) {
    if (child == name) return *table;
  }
  const toml::node* n = table_ ? AsTable(table_)->get(name) : nullptr;
  if (n && n->is_table()) {
    Read(table_, &read_, name);
    children_.emplace_back(std::string(name), std::make_unique<ConfigTable>(doc_, n->as_table(),
                                                                           path_ + "." + std::string(name), this));
    return *children_.back().second;
  }
  if (n) {
    Read(table_, &read_, name);
    Fail(name, "must be a table");
  } else if (parent_ == nullptr && doc_) {
    // Another section of the file ([s3] from [destination]), when written
    // or when another component asked for it already.
    const toml::node* root = doc_->root.get(name);
    if ((root && root->is_table()) || doc_->sections.count(name)) return doc_->SectionTable(name);
  }
  children_.emplace_back(std::string(name),
                         std::make_unique<ConfigTable>(doc_, nullptr, path_ + "." + std::string(name), this));
  return *children_.back().second;
}

Status ConfigTable::Check() const {
  if (!errors_.empty()) return Status::InvalidArgument(errors_.front());
  for (const auto& [name, child] : children_) SLUICE_RETURN_IF_ERROR(child->Check());
  return Status::OK();
}

Status ConfigTable::CheckAllRead(std::string_view type, const std::vector<std::string>& accepted) const {
  if (!table_) return Status::OK();
  for (const auto& key : Keys()) {
    if (std::find(read_.begin(), read_.end(), key) != read_.end()) continue;
    std::vector<std::string> known;
    for (const auto& k : read_) {
      if (k != "type") known.push_back(k);
    }
    for (const auto& k : accepted) {
      if (std::find(known.begin(), known.end(), k) == known.end()) known.push_back(k);
    }
    std::sort(known.begin(), known.end());
    std::string where = Name() + " unknown key '" + key + "'";
    if (!type.empty()) where += " for type '" + std::string(type) + "'";
    where += known.empty() ? " (it accepts no keys)" : " (accepted: " + Join(known) + ")";
    const toml::node* n = AsTable(table_)->get(key);
    if (n && n->source().begin.line > 0) {
      where += " at " + (doc_ && !doc_->file.empty() ? doc_->file + " " : std::string()) + "line " +
               std::to_string(n->source().begin.line);
    }
    return Status::InvalidArgument(where);
  }
  for (const auto& [name, child] : children_) SLUICE_RETURN_IF_ERROR(child->CheckAllRead(type));
  return Status::OK();
}

namespace config {

Result<std::unique_ptr<ConfigDocument>> ConfigDocument::Parse(std::string_view toml, const std::string& file_name,
                                                              const EnvLookup& env) {
  std::unique_ptr<ConfigDocument> doc(new ConfigDocument());
  doc->impl_ = std::make_shared<ConfigTable::Impl>();
  try {
    doc->impl_->root = toml::parse(toml, file_name);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << file_name << " line " << e.source().begin.line << ": " << e.description();
    return Status::InvalidArgument(msg.str());
  }
  doc->impl_->env = env;
  doc->impl_->file = file_name;
  return doc;
}

ConfigDocument::~ConfigDocument() = default;

const ConfigTable& ConfigDocument::Section(std::string_view name) const { return impl_->SectionTable(name); }

bool ConfigDocument::HasSection(std::string_view name) const {
  const toml::node* n = impl_->root.get(name);
  return n && n->is_table();
}

std::optional<std::string> ConfigDocument::TopString(std::string_view key) const {
  const toml::node* n = impl_->root.get(key);
  if (!n || !n->is_string()) return std::nullopt;
  return n->as_string()->get();
}

std::vector<std::string> ConfigDocument::TopKeys() const {
  std::vector<std::string> out;
  for (auto& [k, v] : InWrittenOrder(impl_->root)) out.push_back(k);
  return out;
}

std::vector<std::string> ConfigDocument::SectionsAsked() const {
  std::vector<std::string> out;
  for (const auto& [name, table] : impl_->sections) out.push_back(name);
  return out;
}

std::vector<std::string> ConfigDocument::UnreadSections() const {
  std::vector<std::string> out;
  for (const auto& key : TopKeys()) {
    const toml::node* n = impl_->root.get(key);
    if (n && n->is_table() && !impl_->sections.count(key)) out.push_back(key);
  }
  return out;
}

const std::string& ConfigDocument::file() const { return impl_->file; }

void ConfigDocument::SetPipelineName(std::string name) { impl_->pipeline = std::move(name); }

}  // namespace config
}  // namespace sluice
