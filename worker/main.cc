// lanlm-worker: joins a lanlm-coordinator and computes shard gradients until the run is
// finished or SIGINT/SIGTERM arrives (Boost.Asio signal handling), reconnecting with
// backoff whenever the coordinator goes away.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "engine/cli/flags.h"
#include "engine/base/thread_pool.h"
#include "engine/ops/matmul.h"
#include "ops/logging.h"
#include "protos/cluster_auth.h"
#include "protos/library_logs.h"
#include "worker/http_metrics.h"
#include "worker/worker.h"

namespace {

// worker.Run() with SIGINT and SIGTERM handled on a thread of their own: either stops the worker
// (it finishes the lease in hand, then leaves).
lanlm::Status RunUntilSignalled(lanlm::worker::Worker& worker, const std::string& name) {
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("worker {}: {} received, stopping", name, signal == SIGINT ? "SIGINT" : "SIGTERM");
    worker.Stop();
  });
  std::thread signal_thread([&io] { io.run(); });
  const lanlm::Status status = worker.Run();
  signals.cancel();
  io.stop();
  signal_thread.join();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lanlm;
  worker::WorkerOptions options;
  int threads = 0;
  std::string token_file, token;
  bool keep_running = false;
  std::string http_listen;
  std::string bf16_kernel = "auto";
  ops::LogOptions log_options;
  FlagSet flags("lanlm-worker --coordinator HOST:PORT --cluster-token-file FILE [flags]");
  flags.String("coordinator", &options.coordinator, "coordinator address, host:port");
  options.tls.Register(flags);
  flags.Int("threads", &threads, "threads computing gradients (0 = all cores)", 0, 4096);
  flags.String("cluster-token-file", &token_file,
               "file holding the cluster token (or the environment variable LANLM_CLUSTER_TOKEN; never a flag)");
  flags.String("name", &options.name, "name in the coordinator's logs (default host:pid)");
  flags.Uint64("expect-config-hash", &options.expect_config_hash,
               "refuse to join unless the model config hash matches (0 = accept any)");
  flags.Uint64("expect-tokenizer-hash", &options.expect_tokenizer_hash,
               "refuse to join unless the tokenizer hash matches (0 = accept any)");
  flags.Bool("keep-running", &keep_running, "stay up and wait for a next run after a run finishes");
  flags.String("http-listen", &http_listen, "serve /metrics, /healthz and /readyz on host:port; empty = off");
  flags.String("bf16-kernel", &bf16_kernel,
               "kernel of --precision bf16 runs: auto, native (AVX512_BF16), emulated or emulated-avx2; every "
               "kernel gives the same bits (for benchmarks, and for testing a mixed LAN on one machine)");
  flags.String("relay-listen", &options.relay_listen,
               "serve the parameter relay on host:port: this worker forwards each step's parameters to the peers "
               "the coordinator points at it (its --relay-fanout), so the coordinator's link carries one copy per "
               "step; plaintext, token-checked; empty = off");
  flags.String("relay-address", &options.relay_address,
               "the host:port peers dial to reach --relay-listen (default: --relay-listen itself; required when it "
               "listens on 0.0.0.0)");
  int64_t relay_stall_ms = options.relay_stall.count();
  flags.Int("relay-stall-ms", &relay_stall_ms,
            "give a relaying peer up when it sends no parameter chunk for this many ms, and get the rest from the "
            "coordinator",
            100, 3600000);
  log_options.Register(flags);
  const Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) {
    std::cerr << "lanlm-worker: " << parsed.ToString() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Help();
    return 0;
  }
  if (Status logging = ops::ConfigureLogging("worker", "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v", log_options); !logging.ok()) {
    std::cerr << "lanlm-worker: " << logging.ToString() << "\n";
    return 2;
  }
  protos::RouteLibraryLogs();  // gRPC's lines (a failed TLS handshake) as one log line each, in this log's format
  if (!engine::SelectBf16Kernel(bf16_kernel)) {
    std::cerr << "lanlm-worker: --bf16-kernel = '" << bf16_kernel
              << "' is not one this CPU runs: auto, emulated, emulated-avx2 (AVX2 + FMA), or native (AVX512_BF16)\n";
    return 2;
  }
  if (const char* env = std::getenv(protos::kClusterTokenEnv)) token = env;
  StatusOr<std::string> resolved = protos::ResolveClusterToken(token, token_file);
  if (!resolved.ok()) {
    std::cerr << "lanlm-worker: " << resolved.status().ToString() << "\n";
    return 2;
  }
  options.token = *resolved;
  options.relay_stall = std::chrono::milliseconds(relay_stall_ms);
  options.exit_when_finished = !keep_running;
  if (Status valid = options.Validate(); !valid.ok()) {
    std::cerr << "lanlm-worker: " << valid.ToString() << "\n";
    return 2;
  }

  engine::ThreadPool pool(threads);
  worker::Worker worker(options, pool);
  std::unique_ptr<ops::HttpServer> http;
  if (!http_listen.empty()) {
    auto started = worker::StartWorkerHttp(http_listen, [&worker] { return worker.stats(); }, options.name, pool.size());
    if (!started.ok()) {
      std::cerr << "lanlm-worker: " << started.status().ToString() << "\n";
      return started.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    http = std::move(*started);
    spdlog::info("worker {}: HTTP endpoint (metrics) on port {}", options.name, http->port());
  }
  const Status status = RunUntilSignalled(worker, options.name);
  http.reset();
  const worker::WorkerStats stats = worker.stats();
  spdlog::info("worker {}: exiting after {} leases ({} accepted, {} rejected)", options.name, stats.leases,
               stats.accepted, stats.rejected);
  if (!status.ok()) {
    std::cerr << "lanlm-worker: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}
