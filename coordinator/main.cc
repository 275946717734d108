// lanlm-coordinator: trains over a cluster of lanlm-worker processes (or, with --serve, only
// serves a checkpoint). Parses flags, starts the server, waits for the run to end and prints
// the final `fingerprint=` line on stdout (logs go to stderr).
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "coordinator/coordinator_server.h"
#include "coordinator/http_endpoint.h"
#include "protos/library_logs.h"
#include "coordinator/local_run.h"
#include "coordinator/serve_server.h"
#include "coordinator/run_config.h"
#include "coordinator/generate_service.h"
#include "engine/base/hash.h"
#include "engine/cli/flags.h"
#include "engine/generate/serving_weights.h"
#include "protos/cluster_auth.h"

namespace {

// The final line, the same key=value shape as the last line of `lanlm train`, ending with the
// fingerprint (on stdout; logs go to stderr).
int PrintFinal(bool finished, int64_t step, float loss, const std::string& checkpoint, uint64_t fingerprint) {
  std::printf("%s step=%" PRId64 " loss=%.4f checkpoint=%s fingerprint=%s\n", finished ? "finished" : "stopped", step,
              loss, checkpoint.empty() ? "-" : checkpoint.c_str(), lanlm::engine::Hex16(fingerprint).c_str());
  std::fflush(stdout);
  return 0;
}

// The Generate service hosted next to the coordinator's own: it reads the newest parameter
// snapshot, shares the process's engine pool, adds sessions to ClusterStatus and records into
// metrics.
lanlm::coordinator::ExtraServices GenerateExtras(const lanlm::coordinator::GenerateServiceOptions& generate_options,
                                                 std::shared_ptr<lanlm::coordinator::GenerateMetrics> metrics) {
  using namespace lanlm;
  return [&generate_options, metrics](coordinator::SnapshotSource snapshots, engine::ThreadPool& pool) {
    coordinator::Extras extras;
    // A model the chosen --weights cannot hold is refused at start, not at the first request.
    const auto format = engine::ParseWeightFormat(generate_options.weights);  // validated before
    if (const auto snapshot = snapshots(); snapshot != nullptr && format.ok()) {
      extras.refusal = engine::ServingWeights::CheckShape(snapshot->config, *format);
    }
    auto generate = std::make_unique<coordinator::GenerateService>(std::move(snapshots), generate_options, pool,
                                                                   metrics);
    coordinator::GenerateService* service = generate.get();
    extras.fill_status = [service, weights = generate_options.weights](v1::GetStatusReply* reply) {
      const coordinator::SessionStats stats = service->Stats();
      reply->set_sessions(stats.sessions);
      reply->set_kv_cache_bytes(stats.kv_bytes);
      reply->set_weight_format(weights);
    };
    extras.before_shutdown = [service] { service->Shutdown(); };
    // A prompt above --generate-max-prompt-bytes must reach the service, which refuses it
    // naming the flag, rather than gRPC's receive limit (64 KiB for the rest of the request).
    extras.max_receive_bytes =
        static_cast<int>(std::min<int64_t>(generate_options.max_prompt_bytes + (int64_t{64} << 10), INT32_MAX));
    extras.services.push_back(std::move(generate));
    return extras;
  };
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lanlm;
  coordinator::OpsFlags ops_flags;  // --http-listen, --log-format, --log-level
  coordinator::CoordinatorOptions options;
  bool local = false;
  FlagSet flags("lanlm-coordinator --corpus FILE --cluster-token-file FILE [flags]  |  --serve --checkpoint FILE");
  options.Register(flags);
  ops_flags.Register(flags);
  coordinator::GenerateServiceOptions generate_options;
  generate_options.RegisterFlags(flags);
  flags.Bool("local", &local, "train in this process (engine LocalTrainer, --threads threads), no server: the "
             "single-process reference with the same flags and final line");
  Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.ok()) parsed = ops_flags.Apply();
  if (!parsed.ok()) {
    std::cerr << "lanlm-coordinator: " << parsed.ToString() << "\n";
    return 2;
  }
  protos::RouteLibraryLogs();  // one spdlog line per protobuf/gRPC message, never a multi-line dump
  if (Status valid = generate_options.Validate(); !valid.ok()) {
    std::cerr << "lanlm-coordinator: " << valid.ToString() << "\n";
    return 2;
  }
  // Every TLS and token file is read and checked here, before anything listens.
  StatusOr<coordinator::HostSecurity> security = coordinator::LoadSecurity(options.security);
  if (!security.ok()) {
    std::cerr << "lanlm-coordinator: " << security.status().ToString() << "\n";
    return 2;
  }
  generate_options.client_tokens = security->client_tokens;
  // Generate's metrics outlive the service and are read by the HTTP endpoint.
  const auto generate_metrics = std::make_shared<coordinator::GenerateMetrics>();
  const coordinator::ExtraServices extras = GenerateExtras(generate_options, generate_metrics);
  if (flags.help_requested()) {
    std::cout << flags.Help();
    return 0;
  }
  if (const char* env = std::getenv(protos::kClusterTokenEnv)) options.cluster_token = env;
  if (options.serve) {
    auto server = coordinator::ServeServer::Start(options.checkpoint, options.listen, options.threads,
                                                  /*handle_signals=*/true, extras, *security);
    if (!server.ok()) {
      std::cerr << "lanlm-coordinator: " << server.status().ToString() << "\n";
      return server.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    auto http = ops_flags.Serve({(*server)->status_provider(), nullptr, generate_metrics.get()});
    if (!http.ok()) return 1;
    spdlog::info("stopping: {}", (*server)->Wait());
    return 0;
  }
  if (local) {
    auto result = coordinator::RunLocal(options, flags.Given());
    if (!result.ok()) {
      std::cerr << "lanlm-coordinator: " << result.status().ToString() << "\n";
      return 1;
    }
    return PrintFinal(true, result->step, result->loss, result->checkpoint, result->fingerprint);
  }
  auto server = coordinator::TrainingServer::Start(options, flags.Given(), /*handle_signals=*/true, extras, *security);
  if (!server.ok()) {
    std::cerr << "lanlm-coordinator: " << server.status().ToString() << "\n";
    return server.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  spdlog::info("listening on port {}", (*server)->port());
  auto http = ops_flags.Serve({(*server)->status_provider(), &(*server)->run().metrics(), generate_metrics.get()});
  if (!http.ok()) return 1;  // ~TrainingServer stops the run
  const coordinator::RunResult result = (*server)->Wait();
  const int final_status = PrintFinal(result.finished, result.step, result.loss, result.checkpoint, result.fingerprint);
  if (!result.error.empty()) {  // diverged, or the final checkpoint is lost: never exit 0
    std::cerr << "lanlm-coordinator: " << result.error << "\n";
    return 1;
  }
  return final_status;
}
