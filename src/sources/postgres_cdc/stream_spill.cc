#include "sources/postgres_cdc/stream_spill.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "sources/postgres_cdc/replication_protocol.h"

namespace sluice::cdc {

StreamSpill::~StreamSpill() { Clear(); }

void StreamSpill::Close(Txn& txn) {
  if (txn.file != nullptr) std::fclose(txn.file);
  txn.file = nullptr;
}

void StreamSpill::Clear() {
  for (auto& [xid, txn] : txns_) Close(txn);
  txns_.clear();
  memory_ = 0;
}

Status StreamSpill::Append(uint32_t xid, uint32_t subxid, std::string_view message) {
  Txn& txn = txns_[xid];
  size_t before = txn.memory.size();
  AppendBigEndian32(&txn.memory, subxid);
  AppendBigEndian32(&txn.memory, static_cast<uint32_t>(message.size()));
  txn.memory.append(message);
  memory_ += static_cast<int64_t>(txn.memory.size() - before);
  if (memory_ > budget_) return SpillLargest();
  return Status::OK();
}

Status StreamSpill::SpillLargest() {
  Txn* largest = nullptr;
  for (auto& [xid, txn] : txns_) {
    if (largest == nullptr || txn.memory.size() > largest->memory.size()) largest = &txn;
  }
  if (largest == nullptr || largest->memory.empty()) return Status::OK();
  if (largest->file == nullptr) {
    std::error_code ec;
    std::filesystem::create_directories(directory_, ec);
    std::string path = directory_ + "/sluice-stream-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) {
      return Status::IoError("cannot create a spill file for a streamed transaction in " + directory_ + ": " +
                             std::strerror(errno));
    }
    unlink(path.c_str());
    largest->file = fdopen(fd, "w+b");
    if (largest->file == nullptr) {
      close(fd);
      return Status::IoError("cannot open a spill file in " + directory_);
    }
  }
  if (std::fwrite(largest->memory.data(), 1, largest->memory.size(), largest->file) !=
      largest->memory.size()) {
    return Status::IoError("cannot write a streamed transaction to its spill file in " + directory_ +
                           " (disk full?)");
  }
  largest->file_bytes += static_cast<int64_t>(largest->memory.size());
  spilled_total_ += static_cast<int64_t>(largest->memory.size());
  memory_ -= static_cast<int64_t>(largest->memory.size());
  largest->memory.clear();
  largest->memory.shrink_to_fit();
  return Status::OK();
}

void StreamSpill::Abort(uint32_t xid, uint32_t subxid) {
  auto it = txns_.find(xid);
  if (it == txns_.end()) return;
  if (subxid != xid) {
    it->second.aborted.insert(subxid);
    return;
  }
  memory_ -= static_cast<int64_t>(it->second.memory.size());
  Close(it->second);
  txns_.erase(it);
}

Status StreamSpill::Replay(uint32_t xid, const std::function<Status(std::string_view)>& each) {
  auto it = txns_.find(xid);
  if (it == txns_.end()) return Status::OK();  // nothing of it was published
  Txn& txn = it->second;
  auto replay_records = [&](std::string_view data, size_t* consumed) -> Status {
    size_t pos = 0;
    while (data.size() - pos >= 8) {
      uint32_t subxid = LoadBigEndian32(data.data() + pos);
      uint32_t length = LoadBigEndian32(data.data() + pos + 4);
      if (data.size() - pos - 8 < length) break;
      if (!txn.aborted.contains(subxid)) SLUICE_RETURN_IF_ERROR(each(data.substr(pos + 8, length)));
      pos += 8 + length;
    }
    *consumed = pos;
    return Status::OK();
  };
  Status status;
  if (txn.file != nullptr) {
    std::rewind(txn.file);
    std::vector<char> chunk(1 << 20);
    std::string carry;
    while (status.ok()) {
      size_t n = std::fread(chunk.data(), 1, chunk.size(), txn.file);
      if (n == 0) break;
      carry.append(chunk.data(), n);
      size_t consumed = 0;
      status = replay_records(carry, &consumed);
      carry.erase(0, consumed);
    }
    if (status.ok() && !carry.empty())
      status = Status::IoError("spill file of transaction " + std::to_string(xid) + " is truncated");
  }
  if (status.ok()) {
    size_t consumed = 0;
    status = replay_records(txn.memory, &consumed);
  }
  memory_ -= static_cast<int64_t>(txn.memory.size());
  Close(txn);
  txns_.erase(it);
  return status;
}

}  // namespace sluice::cdc
