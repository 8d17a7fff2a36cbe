#include "sluice/pipeline.h"

#include <nlohmann/json.hpp>

#include "service/pipeline_impl.h"

namespace sluice {

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

Result<std::unique_ptr<Pipeline>> Pipeline::FromFile(const std::string& path, const Registry& registry) {
  auto impl = std::make_unique<Impl>();
  SLUICE_ASSIGN_OR_RETURN(impl->loaded, service::LoadPipelineFile(path, registry, &impl->metrics));
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

Result<std::unique_ptr<Pipeline>> Pipeline::FromToml(std::string_view toml, const Registry& registry,
                                                     std::string name) {
  auto impl = std::make_unique<Impl>();
  SLUICE_ASSIGN_OR_RETURN(impl->loaded,
                          service::LoadPipelineText(toml, name + ".toml", registry, name, &impl->metrics));
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

Status Pipeline::Run() {
  if (impl_->cancel.cancelled()) return Status::Cancelled("pipeline " + name() + " was stopped");
  {
    std::lock_guard<std::mutex> lock(impl_->open_mu);
    if (!impl_->opened) {
      SLUICE_RETURN_IF_ERROR(impl_->loaded->job->Open());
      impl_->opened = true;
    }
  }
  JobRun run = impl_->loaded->job->Run(&impl_->cancel, ProgressMode::kNever);
  return run.status;
}

void Pipeline::Stop() { impl_->cancel.Cancel(); }

std::string Pipeline::StatusJson() const {
  auto j = nlohmann::json::parse(impl_->loaded->job->StatusJson());
  j["name"] = impl_->loaded->config.name;
  return j.dump();
}

Result<std::string> Pipeline::Validate() { return impl_->loaded->job->Validate(); }

const std::string& Pipeline::name() const { return impl_->loaded->config.name; }

}  // namespace sluice
