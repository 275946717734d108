// lanlm_generate_bench: decode throughput of the Generate service with N concurrent sessions,
// end to end over gRPC on loopback (in-process server, random weights of a named config, a
// tokenizer trained to the config's vocabulary on synthetic words). Prints one line per
// session count: aggregate generated tokens/s, per-stream tokens/s, time to first token.
//   lanlm_generate_bench --config S --sessions 1,32 --tokens 100 --max-batch 32
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>

#include "coordinator/generate_service.h"
#include "engine/cli/flags.h"
#include "engine/model/parameters.h"
#include "protos/generate.grpc.pb.h"

namespace {

using namespace lanlm;
using Clock = std::chrono::steady_clock;

std::string SyntheticText(size_t bytes) {
  std::mt19937 rng(1);
  std::string text;
  while (text.size() < bytes) {
    const int len = 2 + static_cast<int>(rng() % 7);
    for (int i = 0; i < len; ++i) text += static_cast<char>('a' + rng() % 26);
    text += rng() % 12 == 0 ? '\n' : ' ';
  }
  return text;
}

struct StreamResult {
  int tokens = 0;
  double tokens_per_second = 0;
  double ttft_s = 0;
  bool ok = false;
};

StreamResult RunStream(lanlm::v1::Generate::Stub& stub, int tokens, uint64_t seed) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  auto rw = stub.Generate(&context);
  lanlm::v1::GenerateRequest request;
  auto* start = request.mutable_start();
  start->set_prompt("abc def ghi");
  start->mutable_sampling()->set_temperature(1.0f);
  start->mutable_sampling()->set_seed(seed);
  start->mutable_stopping()->set_max_new_tokens(tokens);
  start->mutable_stopping()->set_stop_on_eos(false);
  start->mutable_stopping()->set_confidence_threshold(0.0f);
  StreamResult result;
  rw->Write(request);
  lanlm::v1::GenerateEvent event;
  while (rw->Read(&event)) {
    if (event.has_done()) {
      result.tokens = event.done().usage().generated_tokens();
      result.tokens_per_second = event.done().tokens_per_second();
      result.ttft_s = event.done().time_to_first_token_s();
      break;
    }
  }
  lanlm::v1::GenerateRequest close;
  close.mutable_close();
  rw->Write(close);
  rw->WritesDone();
  while (rw->Read(&event)) {
  }
  result.ok = rw->Finish().ok();
  return result;
}

// Random parameters (seed 1, std 0.02) of config as version 1, with tokenizer.
std::shared_ptr<const coordinator::ParamSnapshot> RandomSnapshot(const engine::ModelConfig& config,
                                                                  engine::BpeTokenizer tokenizer) {
  auto snapshot = std::make_shared<coordinator::ParamSnapshot>();
  snapshot->config = config;
  snapshot->params.resize(static_cast<size_t>(engine::ParameterCount(config)));
  engine::InitParameters(config, 1, 0.02f, snapshot->params.data());
  snapshot->version = 1;
  snapshot->tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
  return snapshot;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_name = "S";
  std::string sessions_list = "1,32";
  int tokens = 100;
  int threads = 0;
  coordinator::GenerateServiceOptions options;
  FlagSet flags("lanlm_generate_bench [flags]: Generate service decode throughput with concurrent sessions");
  flags.String("config", &config_name, "named model config (S, M, INF15M)");
  flags.String("sessions", &sessions_list, "comma-separated concurrent session counts to measure");
  flags.Int("tokens", &tokens, "tokens each session generates", 1, 1 << 16);
  flags.Int("threads", &threads, "engine threads; 0 = all cores", 0, 1024);
  options.RegisterFlags(flags);
  const Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok() || flags.help_requested()) {
    std::fputs(parsed.ok() ? flags.Help().c_str() : (parsed.message() + "\n").c_str(), stderr);
    return parsed.ok() ? 0 : 2;
  }
  // One process's sessions are one client: unless told otherwise, let it use them all.
  if (options.max_sessions_per_client == 0) options.max_sessions_per_client = options.max_sessions;
  auto config = engine::NamedConfig(config_name);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 2;
  }
  auto tokenizer = engine::BpeTokenizer::Train(SyntheticText(config->vocab_size * 400), config->vocab_size);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "tokenizer: %s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  const std::shared_ptr<const coordinator::ParamSnapshot> pinned = RandomSnapshot(*config, std::move(*tokenizer));

  engine::ThreadPool pool(threads);
  coordinator::GenerateService service([pinned] { return pinned; }, options, pool);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = lanlm::v1::Generate::NewStub(channel);

  std::printf("config %s (%s), %d engine threads, %d decode threads, max batch %d, %d tokens per session\n",
              config_name.c_str(), config->ToString().c_str(), pool.size(), options.decode_threads, options.max_batch,
              tokens);
  RunStream(*stub, 4, 0);  // warm-up
  std::stringstream list(sessions_list);
  std::string item;
  while (std::getline(list, item, ',')) {
    const int n = std::max(1, std::atoi(item.c_str()));
    std::vector<StreamResult> results(static_cast<size_t>(n));
    const Clock::time_point start = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < n; ++i) {
      clients.emplace_back(
          [&, i] { results[static_cast<size_t>(i)] = RunStream(*stub, tokens, static_cast<uint64_t>(i)); });
    }
    for (auto& t : clients) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    int total = 0, failed = 0;
    double per_stream = 0, ttft = 0;
    for (const auto& r : results) {
      total += r.tokens;
      failed += r.ok ? 0 : 1;
      per_stream += r.tokens_per_second / n;
      ttft += r.ttft_s / n;
    }
    std::printf(
        "sessions %3d: %8.1f tokens/s aggregate, %7.1f tokens/s per stream, first token %.4f s, "
        "%d tokens in %.2f s%s\n",
        n, total / wall, per_stream, ttft, total, wall, failed ? " (FAILED STREAMS)" : "");
    std::fflush(stdout);
  }
  service.Shutdown();
  server->Shutdown();
  return 0;
}
