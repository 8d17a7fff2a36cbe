#include "sluice/batch.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice {

// ---------------------------------------------------------------------------
// Arrow schema parsing

namespace {

std::string ExtensionName(const char* metadata) {
  if (metadata == nullptr) return {};
  auto read_i32 = [](const char*& p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    p += 4;
    return v;
  };
  const char* p = metadata;
  int32_t n = read_i32(p);
  for (int32_t i = 0; i < n; ++i) {
    int32_t klen = read_i32(p);
    std::string_view key(p, static_cast<size_t>(klen));
    p += klen;
    int32_t vlen = read_i32(p);
    std::string_view value(p, static_cast<size_t>(vlen));
    p += vlen;
    if (key == "ARROW:extension:name") return std::string(value);
  }
  return {};
}

}  // namespace

Result<DataType> DataTypeFromArrow(const ArrowSchema& field) {
  std::string_view f = field.format;
  std::string ext = ExtensionName(field.metadata);
  if (f == "b") return DataType::Of(TypeId::kBool);
  // Only the layouts encoders read directly; others must be cast first.
  if (f == "s") return DataType::Of(TypeId::kInt16);
  if (f == "i") return DataType::Of(TypeId::kInt32);
  if (f == "l") return DataType::Of(TypeId::kInt64);
  if (f == "f") return DataType::Of(TypeId::kFloat32);
  if (f == "g") return DataType::Of(TypeId::kFloat64);
  if (f.starts_with("d:")) {
    int p = 0, s = 0, bits = 128;
    if (std::sscanf(field.format, "d:%d,%d,%d", &p, &s, &bits) < 2 || bits != 128) {
      return Status::InvalidArgument(std::string("unsupported Arrow decimal '") + field.format + "'");
    }
    return DataType::Decimal(p, s);
  }
  if (f == "u" || f == "U" || f == "vu") {
    if (ext == "arrow.json") return DataType::Of(TypeId::kJson);
    return DataType::Of(TypeId::kString);
  }
  if (f == "z" || f == "Z" || f == "vz") return DataType::Of(TypeId::kBinary);
  if (f == "w:16" && ext == "arrow.uuid") return DataType::Of(TypeId::kUuid);
  if (f == "tdD") return DataType::Of(TypeId::kDate);
  if (f == "ttu") return DataType::Of(TypeId::kTime);
  if (f.starts_with("tsu:")) {
    return DataType::Of(f.size() > 4 ? TypeId::kTimestampTz : TypeId::kTimestamp);
  }
  if (f == "tin") return DataType::Of(TypeId::kInterval);
  if ((f == "+l" || f == "+L") && field.n_children == 1) {
    SLUICE_ASSIGN_OR_RETURN(DataType element, DataTypeFromArrow(*field.children[0]));
    return DataType::List(element);
  }
  return Status::InvalidArgument(std::string("unsupported Arrow type '") + field.format +
                                 "' for column '" + (field.name ? field.name : "") + "'");
}

ImportedSchema::~ImportedSchema() {
  if (arrow.release) arrow.release(&arrow);
}

Result<std::shared_ptr<const ImportedSchema>> ImportedSchema::Make(ArrowSchema* schema,
                                                                   const Schema* logical) {
  auto out = std::make_shared<ImportedSchema>();
  out->arrow = *schema;
  schema->release = nullptr;
  if (std::string_view(out->arrow.format) != "+s") {
    return Status::InvalidArgument("a batch must be an Arrow struct array, got format '" +
                                   std::string(out->arrow.format) + "'");
  }
  if (logical && logical->num_fields() != out->arrow.n_children) {
    return Status::Internal("logical schema does not match the Arrow schema");
  }
  std::vector<Field> fields;
  for (int64_t i = 0; i < out->arrow.n_children; ++i) {
    const ArrowSchema& child = *out->arrow.children[i];
    DataType type;
    if (logical) {
      type = logical->field(static_cast<int>(i)).type;
    } else {
      SLUICE_ASSIGN_OR_RETURN(type, DataTypeFromArrow(child));
    }
    fields.push_back(Field{child.name ? child.name : "", type, (child.flags & ARROW_FLAG_NULLABLE) != 0});
  }
  out->schema = Schema(std::move(fields));
  return std::shared_ptr<const ImportedSchema>(std::move(out));
}

// ---------------------------------------------------------------------------
// ColumnView

std::string_view ColumnView::BytesAt(int64_t i) const {
  const char* f = schema_->format;
  int64_t j = i + array_->offset;
  if (f[0] == 'v') {
    // Arrow string view: 16-byte views, inline when length <= 12.
    const auto* view = static_cast<const uint8_t*>(array_->buffers[1]) + j * 16;
    int32_t len;
    std::memcpy(&len, view, 4);
    if (len <= 12) return {reinterpret_cast<const char*>(view + 4), static_cast<size_t>(len)};
    int32_t buffer_index, offset;
    std::memcpy(&buffer_index, view + 8, 4);
    std::memcpy(&offset, view + 12, 4);
    const auto* data = static_cast<const char*>(array_->buffers[2 + buffer_index]);
    return {data + offset, static_cast<size_t>(len)};
  }
  const auto* data = static_cast<const char*>(array_->buffers[2]);
  if (f[0] == 'U' || f[0] == 'Z') {
    const auto* offsets = static_cast<const int64_t*>(array_->buffers[1]);
    return {data + offsets[j], static_cast<size_t>(offsets[j + 1] - offsets[j])};
  }
  if (f[0] == 'w') {
    int width = std::atoi(f + 2);
    return {static_cast<const char*>(array_->buffers[1]) + j * width, static_cast<size_t>(width)};
  }
  const auto* offsets = static_cast<const int32_t*>(array_->buffers[1]);
  return {data + offsets[j], static_cast<size_t>(offsets[j + 1] - offsets[j])};
}

std::pair<int64_t, int64_t> ColumnView::ListRange(int64_t i) const {
  int64_t j = i + array_->offset;
  if (schema_->format[1] == 'L') {
    const auto* offsets = static_cast<const int64_t*>(array_->buffers[1]);
    return {offsets[j], offsets[j + 1]};
  }
  const auto* offsets = static_cast<const int32_t*>(array_->buffers[1]);
  return {offsets[j], offsets[j + 1]};
}

ColumnView ColumnView::ListChild() const {
  return ColumnView(array_->children[0], schema_->children[0], type_->element.get());
}

// ---------------------------------------------------------------------------
// Batch

namespace {

int64_t ArrayBytes(const ArrowArray& a, const ArrowSchema& s) {
  std::string_view f = s.format;
  int64_t n = a.length + a.offset;
  int64_t bytes = a.buffers && a.n_buffers > 0 && a.buffers[0] ? (n + 7) / 8 : 0;
  if (f == "+s") {
  } else if (f == "b") {
    bytes += (n + 7) / 8;
  } else if (f == "c" || f == "C") {
    bytes += n;
  } else if (f == "s" || f == "S") {
    bytes += 2 * n;
  } else if (f == "i" || f == "I" || f == "f" || f == "tdD" || f == "tts" || f == "ttm") {
    bytes += 4 * n;
  } else if (f == "l" || f == "L" || f == "g" || f == "tdm" || f == "ttu" || f == "ttn" ||
             f.starts_with("ts")) {
    bytes += 8 * n;
  } else if (f.starts_with("d:") || f == "tin" || f == "w:16") {
    bytes += 16 * n;
  } else if (f == "u" || f == "z") {
    const auto* offsets = static_cast<const int32_t*>(a.buffers[1]);
    bytes += 4 * (n + 1) + (offsets ? offsets[n] : 0);
  } else if (f == "U" || f == "Z") {
    const auto* offsets = static_cast<const int64_t*>(a.buffers[1]);
    bytes += 8 * (n + 1) + (offsets ? offsets[n] : 0);
  } else if (f == "+l" || f == "+L") {
    bytes += (f == "+l" ? 4 : 8) * (n + 1);
  } else {
    bytes += 16 * n;  // views and others: an estimate is enough for budgets
  }
  for (int64_t c = 0; c < a.n_children && c < s.n_children; ++c) {
    bytes += ArrayBytes(*a.children[c], *s.children[c]);
  }
  return bytes;
}

}  // namespace

Result<std::shared_ptr<Batch>> Batch::FromArrow(ArrowArray* array, ArrowSchema* schema) {
  auto imported = ImportedSchema::Make(schema);
  if (!imported.ok()) {
    if (array->release) array->release(array);
    return imported.status();
  }
  return FromArrow(array, std::move(imported).value());
}

Result<std::shared_ptr<Batch>> Batch::FromArrow(ArrowArray* array,
                                                std::shared_ptr<const ImportedSchema> schema) {
  std::shared_ptr<Batch> batch(new Batch());
  batch->array_ = *array;
  array->release = nullptr;
  batch->schema_ = std::move(schema);
  if (batch->array_.n_children != batch->schema_->arrow.n_children) {
    return Status::InvalidArgument("Arrow array has " + std::to_string(batch->array_.n_children) +
                                   " columns but its schema has " +
                                   std::to_string(batch->schema_->arrow.n_children));
  }
  batch->byte_size_ = ArrayBytes(batch->array_, batch->schema_->arrow);
  return batch;
}

Batch::~Batch() {
  if (array_.release) array_.release(&array_);
}

ColumnView Batch::column(int i) const {
  return ColumnView(array_.children[i], schema_->arrow.children[i], &schema_->schema.field(i).type);
}

Status Batch::ExportTo(ArrowArray* out) {
  if (array_.release == nullptr) return Status::Internal("batch already exported");
  *out = array_;
  array_.release = nullptr;
  array_.length = 0;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// BatchBuilder

struct BatchBuilder::Column {
  DataType type;
  std::string format;
  std::string metadata;  // Arrow extension metadata, binary-encoded
  std::vector<uint8_t> validity;
  std::vector<uint8_t> values;
  std::vector<int32_t> offsets{0};
  std::string data;
  int64_t length = 0;
  int64_t nulls = 0;

  void SetValid(bool valid) {
    if ((length & 7) == 0) validity.push_back(0);
    if (valid) validity.back() |= static_cast<uint8_t>(1u << (length & 7));
    if (!valid) ++nulls;
  }
  template <typename T>
  void Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    values.insert(values.end(), p, p + sizeof(T));
  }
};

namespace {

std::string EncodeExtension(const std::string& name) {
  std::string out;
  auto put = [&](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  put(1);
  std::string key = "ARROW:extension:name";
  put(static_cast<int32_t>(key.size()));
  out += key;
  put(static_cast<int32_t>(name.size()));
  out += name;
  return out;
}

struct OwnedArray {
  std::vector<const void*> buffers;
  std::vector<ArrowArray*> children;
  std::vector<uint8_t> validity, values;
  std::vector<int32_t> offsets;
  std::string data;
};

void ReleaseArray(ArrowArray* a) {
  for (int64_t i = 0; i < a->n_children; ++i) {
    if (a->children[i]->release) a->children[i]->release(a->children[i]);
    delete a->children[i];
  }
  delete static_cast<OwnedArray*>(a->private_data);
  a->release = nullptr;
}

struct OwnedSchema {
  std::string format, name, metadata;
  std::vector<ArrowSchema*> children;
};

void ReleaseSchema(ArrowSchema* s) {
  for (int64_t i = 0; i < s->n_children; ++i) {
    if (s->children[i]->release) s->children[i]->release(s->children[i]);
    delete s->children[i];
  }
  delete static_cast<OwnedSchema*>(s->private_data);
  s->release = nullptr;
}

void FillSchema(ArrowSchema* s, std::string format, std::string name, std::string metadata,
                std::vector<ArrowSchema*> children, int64_t flags) {
  auto* owned = new OwnedSchema{std::move(format), std::move(name), std::move(metadata),
                                std::move(children)};
  *s = ArrowSchema{owned->format.c_str(),
                   owned->name.c_str(),
                   owned->metadata.empty() ? nullptr : owned->metadata.data(),
                   flags,
                   static_cast<int64_t>(owned->children.size()),
                   owned->children.data(),
                   nullptr,
                   &ReleaseSchema,
                   owned};
}

}  // namespace

BatchBuilder::BatchBuilder(Schema schema) : schema_(std::move(schema)) {
  for (const auto& field : schema_.fields()) {
    auto col = std::make_unique<Column>();
    col->type = field.type;
    switch (field.type.id) {
      case TypeId::kBool: col->format = "b"; break;
      case TypeId::kInt16: col->format = "s"; break;
      case TypeId::kInt32: col->format = "i"; break;
      case TypeId::kInt64: col->format = "l"; break;
      case TypeId::kFloat32: col->format = "f"; break;
      case TypeId::kFloat64: col->format = "g"; break;
      case TypeId::kDecimal:
        col->format = "d:" + std::to_string(field.type.precision) + "," + std::to_string(field.type.scale);
        break;
      case TypeId::kString: col->format = "u"; break;
      case TypeId::kJson:
        col->format = "u";
        col->metadata = EncodeExtension("arrow.json");
        break;
      case TypeId::kBinary: col->format = "z"; break;
      case TypeId::kUuid:
        col->format = "w:16";
        col->metadata = EncodeExtension("arrow.uuid");
        break;
      case TypeId::kDate: col->format = "tdD"; break;
      case TypeId::kTime: col->format = "ttu"; break;
      case TypeId::kTimestamp: col->format = "tsu:"; break;
      case TypeId::kTimestampTz: col->format = "tsu:UTC"; break;
      case TypeId::kInterval: col->format = "tin"; break;
      case TypeId::kList: col->format = "+l"; break;  // only null lists supported
    }
    columns_.push_back(std::move(col));
  }
}

BatchBuilder::~BatchBuilder() = default;

void BatchBuilder::AppendNull(int col) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(false);
  switch (c.type.id) {
    case TypeId::kBool:
      if ((c.length & 7) == 0) c.values.push_back(0);
      break;
    case TypeId::kString:
    case TypeId::kJson:
    case TypeId::kBinary:
    case TypeId::kList:
      c.offsets.push_back(c.offsets.back());
      break;
    case TypeId::kInt16: c.Put<int16_t>(0); break;
    case TypeId::kInt32:
    case TypeId::kDate:
    case TypeId::kFloat32: c.Put<int32_t>(0); break;
    case TypeId::kDecimal:
    case TypeId::kUuid:
    case TypeId::kInterval:
      c.Put<int64_t>(0);
      c.Put<int64_t>(0);
      break;
    default: c.Put<int64_t>(0); break;
  }
  ++c.length;
}

void BatchBuilder::AppendBool(int col, bool v) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(true);
  if ((c.length & 7) == 0) c.values.push_back(0);
  if (v) c.values.back() |= static_cast<uint8_t>(1u << (c.length & 7));
  ++c.length;
}

void BatchBuilder::AppendInt(int col, int64_t v) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(true);
  switch (c.type.id) {
    case TypeId::kInt16: c.Put<int16_t>(static_cast<int16_t>(v)); break;
    case TypeId::kInt32:
    case TypeId::kDate: c.Put<int32_t>(static_cast<int32_t>(v)); break;
    case TypeId::kDecimal:
      c.Put<int64_t>(v);
      c.Put<int64_t>(v < 0 ? -1 : 0);  // two's complement high word
      break;
    default: c.Put<int64_t>(v); break;
  }
  ++c.length;
}

void BatchBuilder::AppendDouble(int col, double v) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(true);
  if (c.type.id == TypeId::kFloat32) {
    c.Put<float>(static_cast<float>(v));
  } else {
    c.Put<double>(v);
  }
  ++c.length;
}

void BatchBuilder::AppendBytes(int col, std::string_view v) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(true);
  if (c.type.id == TypeId::kUuid) {
    c.values.insert(c.values.end(), v.begin(), v.end());
  } else {
    c.data.append(v);
    c.offsets.push_back(static_cast<int32_t>(c.data.size()));
  }
  ++c.length;
}

void BatchBuilder::AppendInterval(int col, int32_t months, int32_t days, int64_t micros) {
  Column& c = *columns_[static_cast<size_t>(col)];
  c.SetValid(true);
  c.Put<int32_t>(months);
  c.Put<int32_t>(days);
  c.Put<int64_t>(micros * 1000);
  ++c.length;
}

Result<std::shared_ptr<Batch>> BatchBuilder::Finish() {
  int64_t rows = columns_.empty() ? 0 : columns_[0]->length;
  std::vector<ArrowSchema*> child_schemas;
  auto* top = new OwnedArray();
  for (size_t i = 0; i < columns_.size(); ++i) {
    Column& c = *columns_[i];
    if (c.length != rows) {
      delete top;
      for (auto* s : child_schemas) {
        s->release(s);
        delete s;
      }
      return Status::InvalidArgument("column '" + schema_.field(static_cast<int>(i)).name + "' has " +
                                     std::to_string(c.length) + " values, expected " +
                                     std::to_string(rows));
    }
    auto* owned = new OwnedArray();
    owned->validity = std::move(c.validity);
    owned->values = std::move(c.values);
    owned->offsets = std::move(c.offsets);
    owned->data = std::move(c.data);
    bool var = c.format == "u" || c.format == "z";
    bool list = c.format == "+l";
    owned->buffers.push_back(c.nulls ? owned->validity.data() : nullptr);
    if (var || list) {
      owned->buffers.push_back(owned->offsets.data());
    } else {
      owned->buffers.push_back(owned->values.data());
    }
    if (var) owned->buffers.push_back(owned->data.data());
    auto* arr = new ArrowArray{c.length, c.nulls, 0, static_cast<int64_t>(owned->buffers.size()), 0,
                               owned->buffers.data(), nullptr, nullptr, &ReleaseArray, owned};
    std::vector<ArrowSchema*> list_children;
    if (list) {
      // Lists built here are always empty or null; their child is an empty utf8 array.
      auto* child_owned = new OwnedArray();
      child_owned->offsets = {0};
      child_owned->buffers = {nullptr, child_owned->offsets.data(), child_owned->data.data()};
      owned->children.push_back(new ArrowArray{0, 0, 0, 3, 0, child_owned->buffers.data(), nullptr,
                                               nullptr, &ReleaseArray, child_owned});
      arr->n_children = 1;
      arr->children = owned->children.data();
      auto* child_schema = new ArrowSchema();
      FillSchema(child_schema, "u", "item", "", {}, ARROW_FLAG_NULLABLE);
      list_children.push_back(child_schema);
    }
    top->children.push_back(arr);
    auto* schema = new ArrowSchema();
    FillSchema(schema, c.format, schema_.field(static_cast<int>(i)).name, c.metadata,
               std::move(list_children), ARROW_FLAG_NULLABLE);
    child_schemas.push_back(schema);
  }
  top->buffers.push_back(nullptr);
  ArrowArray array{rows, 0, 0, 1, static_cast<int64_t>(top->children.size()), top->buffers.data(),
                   top->children.data(), nullptr, &ReleaseArray, top};
  ArrowSchema schema;
  FillSchema(&schema, "+s", "", "", std::move(child_schemas), 0);
  for (auto& c : columns_) {
    c->validity.clear();
    c->values.clear();
    c->offsets.assign(1, 0);
    c->data.clear();
    c->length = 0;
    c->nulls = 0;
  }
  return Batch::FromArrow(&array, &schema);
}

}  // namespace sluice
