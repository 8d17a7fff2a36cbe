// Test-only: Batches from hand-built Arrow arrays, for layouts BatchBuilder
// does not make (128-bit decimals beyond int64, lists with elements, UUIDs
// as text, 64-bit offsets, string views, sliced arrays).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/arrow_c.h"
#include "sluice/batch.h"

namespace sluice::pgtest {

/// One Arrow array: buffers as bytes (nullopt = a null buffer pointer).
struct TestArray {
  std::string format;
  int64_t length = 0;
  int64_t null_count = 0;
  int64_t offset = 0;
  std::vector<std::optional<std::string>> buffers;
  std::vector<TestArray> children;
};

inline std::optional<std::string> Validity(const std::vector<bool>& valid) {
  std::string bits((valid.size() + 7) / 8, '\0');
  bool any_null = false;
  for (size_t i = 0; i < valid.size(); ++i) {
    if (valid[i]) {
      bits[i / 8] = static_cast<char>(bits[i / 8] | (1 << (i % 8)));
    } else {
      any_null = true;
    }
  }
  if (!any_null) return std::nullopt;
  return bits;
}

template <typename T>
TestArray Fixed(std::string format, const std::vector<std::optional<T>>& values) {
  TestArray a;
  a.format = std::move(format);
  a.length = static_cast<int64_t>(values.size());
  std::string data(values.size() * sizeof(T), '\0');
  std::vector<bool> valid;
  for (size_t i = 0; i < values.size(); ++i) {
    valid.push_back(values[i].has_value());
    if (values[i]) std::memcpy(&data[i * sizeof(T)], &*values[i], sizeof(T));
    if (!values[i]) ++a.null_count;
  }
  a.buffers = {Validity(valid), data};
  return a;
}

inline TestArray Decimal128(int precision, int scale, const std::vector<std::optional<__int128>>& values) {
  return Fixed<__int128>("d:" + std::to_string(precision) + "," + std::to_string(scale), values);
}

/// "u"/"z" (32-bit offsets) or "U"/"Z" (64-bit offsets).
inline TestArray Strings(const std::vector<std::optional<std::string>>& values, std::string format = "u") {
  TestArray a;
  a.format = format;
  a.length = static_cast<int64_t>(values.size());
  bool wide = format == "U" || format == "Z";
  std::string offsets, data;
  std::vector<bool> valid;
  auto put = [&](int64_t v) {
    if (wide) {
      offsets.append(reinterpret_cast<const char*>(&v), 8);
    } else {
      auto v32 = static_cast<int32_t>(v);
      offsets.append(reinterpret_cast<const char*>(&v32), 4);
    }
  };
  put(0);
  for (const auto& v : values) {
    valid.push_back(v.has_value());
    if (v) data += *v;
    if (!v) ++a.null_count;
    put(static_cast<int64_t>(data.size()));
  }
  a.buffers = {Validity(valid), offsets, data};
  return a;
}

/// "vu": string views, inline up to 12 bytes, otherwise in one data buffer.
inline TestArray StringViews(const std::vector<std::optional<std::string>>& values) {
  TestArray a;
  a.format = "vu";
  a.length = static_cast<int64_t>(values.size());
  std::string views, data;
  std::vector<bool> valid;
  for (const auto& v : values) {
    valid.push_back(v.has_value());
    if (!v) ++a.null_count;
    char view[16] = {};
    std::string s = v.value_or("");
    auto len = static_cast<int32_t>(s.size());
    std::memcpy(view, &len, 4);
    if (len <= 12) {
      std::memcpy(view + 4, s.data(), s.size());
    } else {
      std::memcpy(view + 4, s.data(), 4);
      int32_t buffer_index = 0;
      auto offset = static_cast<int32_t>(data.size());
      std::memcpy(view + 8, &buffer_index, 4);
      std::memcpy(view + 12, &offset, 4);
      data += s;
    }
    views.append(view, 16);
  }
  std::string sizes(8, '\0');
  int64_t size = static_cast<int64_t>(data.size());
  std::memcpy(sizes.data(), &size, 8);
  a.buffers = {Validity(valid), views, data, sizes};
  return a;
}

/// A "+l" list: `lists[i]` is the child range [first, second) or nullopt.
inline TestArray List(TestArray child, const std::vector<std::optional<std::pair<int32_t, int32_t>>>& lists) {
  TestArray a;
  a.format = "+l";
  a.length = static_cast<int64_t>(lists.size());
  std::string offsets;
  std::vector<bool> valid;
  int32_t last = 0;
  offsets.append(reinterpret_cast<const char*>(&last), 4);
  for (const auto& l : lists) {
    valid.push_back(l.has_value());
    if (!l) ++a.null_count;
    if (l) last = l->second;
    offsets.append(reinterpret_cast<const char*>(&last), 4);
  }
  a.buffers = {Validity(valid), offsets};
  a.children.push_back(std::move(child));
  return a;
}

namespace detail {

struct OwnedArray {
  std::vector<std::optional<std::string>> buffers;
  std::vector<const void*> pointers;
  std::vector<ArrowArray*> children;
};

inline void ReleaseArray(ArrowArray* a) {
  auto* owned = static_cast<OwnedArray*>(a->private_data);
  for (ArrowArray* child : owned->children) {
    if (child->release) child->release(child);
    delete child;
  }
  delete owned;
  a->release = nullptr;
}

struct OwnedSchema {
  std::string format, name;
  std::vector<ArrowSchema*> children;
};

inline void ReleaseSchema(ArrowSchema* s) {
  auto* owned = static_cast<OwnedSchema*>(s->private_data);
  for (ArrowSchema* child : owned->children) {
    if (child->release) child->release(child);
    delete child;
  }
  delete owned;
  s->release = nullptr;
}

inline void Export(const TestArray& in, const std::string& name, ArrowArray* array, ArrowSchema* schema) {
  auto* oa = new OwnedArray();
  oa->buffers = in.buffers;
  for (const auto& b : oa->buffers) oa->pointers.push_back(b ? b->data() : nullptr);
  auto* os = new OwnedSchema{in.format, name, {}};
  for (const auto& child : in.children) {
    auto* ca = new ArrowArray();
    auto* cs = new ArrowSchema();
    Export(child, "item", ca, cs);
    oa->children.push_back(ca);
    os->children.push_back(cs);
  }
  *array = ArrowArray{in.length,
                      in.null_count,
                      in.offset,
                      static_cast<int64_t>(oa->pointers.size()),
                      static_cast<int64_t>(oa->children.size()),
                      oa->pointers.data(),
                      oa->children.empty() ? nullptr : oa->children.data(),
                      nullptr,
                      &ReleaseArray,
                      oa};
  *schema = ArrowSchema{os->format.c_str(),
                        os->name.c_str(),
                        nullptr,
                        ARROW_FLAG_NULLABLE,
                        static_cast<int64_t>(os->children.size()),
                        os->children.empty() ? nullptr : os->children.data(),
                        nullptr,
                        &ReleaseSchema,
                        os};
}

}  // namespace detail

/// A batch with the given columns (all of the same length, counted after
/// their offsets). `logical`, when given, supplies the sluice types (e.g. a
/// UUID or JSON column carried as "u").
inline Result<std::shared_ptr<Batch>> MakeBatch(const std::vector<std::pair<std::string, TestArray>>& columns,
                                                const Schema* logical = nullptr) {
  TestArray top;
  top.format = "+s";
  top.length = columns.empty() ? 0 : columns[0].second.length - columns[0].second.offset;
  top.buffers = {std::nullopt};
  ArrowArray array;
  ArrowSchema schema;
  auto* oa = new detail::OwnedArray();
  oa->buffers = top.buffers;
  oa->pointers = {nullptr};
  auto* os = new detail::OwnedSchema{"+s", "", {}};
  for (const auto& [name, column] : columns) {
    auto* ca = new ArrowArray();
    auto* cs = new ArrowSchema();
    detail::Export(column, name, ca, cs);
    // Children of a struct share its length; a sliced child keeps its own
    // offset and a length that counts from it.
    ca->length = column.length - column.offset;
    oa->children.push_back(ca);
    os->children.push_back(cs);
  }
  array = ArrowArray{top.length,
                     0,
                     0,
                     1,
                     static_cast<int64_t>(oa->children.size()),
                     oa->pointers.data(),
                     oa->children.data(),
                     nullptr,
                     &detail::ReleaseArray,
                     oa};
  schema = ArrowSchema{os->format.c_str(),
                       os->name.c_str(),
                       nullptr,
                       0,
                       static_cast<int64_t>(os->children.size()),
                       os->children.data(),
                       nullptr,
                       &detail::ReleaseSchema,
                       os};
  auto imported = ImportedSchema::Make(&schema, logical);
  if (!imported.ok()) {
    array.release(&array);
    return imported.status();
  }
  return Batch::FromArrow(&array, std::move(imported).value());
}

}  // namespace sluice::pgtest
