#include "destinations/null/null_destination.h"

namespace sluice::destinations {

namespace {

class NullDestination : public Destination {
 public:
  Status Begin(const Schema&) override { return Status::OK(); }
  Status Write(const Batch&) override { return Status::OK(); }
  Status Commit() override { return Status::OK(); }
  void Abort() override {}
  std::string Describe() const override { return "null (discarded)"; }
};

}  // namespace

std::unique_ptr<Destination> MakeNullDestination() { return std::make_unique<NullDestination>(); }

Status RegisterNullDestination(Registry& registry) {
  return registry.AddDestination(
      "null", [](const ConfigTable&) -> Result<std::unique_ptr<Destination>> { return MakeNullDestination(); },
      {"discards the rows (benchmarks, dry runs: the whole read and transform runs)", {}});
}

}  // namespace sluice::destinations
