// The step loop's side of the parameter relay (protocol 7): who feeds a worker the current
// version, and the rest of a version a peer did not deliver. See training_run.h.
#include <spdlog/spdlog.h>

#include "coordinator/training_run.h"

namespace lanlm::coordinator {

const TrainingRun::Connection* TrainingRun::RelaySourceFor(int64_t connection) {
  for (RelayNode& node : relay_nodes_) {
    if (node.connection == connection || node.children >= settings_.relay_fanout) continue;
    auto it = connections_.find(node.connection);
    if (it == connections_.end()) continue;
    ++node.children;
    spdlog::debug("step {}: {} gets the parameters from {} ({})", state_.step, connection, Who(it->second),
                  it->second.relay_address);
    return &it->second;
  }
  return nullptr;
}

void TrainingRun::OnParamRequest(int64_t connection, const std::string& run_id, int64_t version, int64_t offset) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || ended_) return;
  Connection& conn = it->second;
  if (run_id != run_id_) {
    conn.link->Close(InvalidArgumentError("ParamRequest for run " + run_id.substr(0, 40) + " on a stream of run " +
                                          run_id_));
    return;
  }
  if (version != state_.step || !params_ || params_->version != version) {
    // Its lease is of a step that has ended: nothing it computes can be applied.
    conn.link->Close(Status(StatusCode::kAborted, "ParamRequest for version " + std::to_string(version) +
                                                      ", but the run is at step " + std::to_string(state_.step) +
                                                      " and keeps only its parameters; reconnect"));
    return;
  }
  if (Status sent = conn.link->SendParams(params_, offset); !sent.ok()) {
    conn.link->Close(sent);
    return;
  }
  const int64_t n = static_cast<int64_t>(params_->params.size());
  bytes_out_ += (n - offset) * engine::WireBytes(static_cast<int>(settings_.wire));
  metrics_.RelayFallback(conn.worker_id);
  spdlog::info("step {}: worker {} did not get the parameters from its peer; sent them from float {}", state_.step,
               Who(conn), offset);
}

}  // namespace lanlm::coordinator
