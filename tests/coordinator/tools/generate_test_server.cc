// lanlm_generate_test_server: a Generate server over a fixed random-weight tiny model, for
// tests of clients in other languages (tests/coordinator/generate_example_test.py). Prints
// "listening on 127.0.0.1:PORT" and serves until its stdin closes.
#include <cstdio>
#include <iostream>
#include <string>

#include "engine/cli/flags.h"
#include "protos/tls.h"
#include "tests/coordinator/generate_test_util.h"

int main(int argc, char** argv) {
  using namespace lanlm;
  int port = 0;
  coordinator::GenerateServiceOptions options;
  protos::ServerTlsOptions tls;
  std::string token_file;
  FlagSet flags("lanlm_generate_test_server [--port N]: Generate over a random-weight tiny model");
  flags.Int("port", &port, "port to listen on; 0 = any free port", 0, 65535);
  options.RegisterFlags(flags);
  tls.Register(flags);
  flags.String("client-token-file", &token_file, "require one of this file's client tokens");
  const Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok() || flags.help_requested()) {
    std::fputs(parsed.ok() ? flags.Help().c_str() : (parsed.message() + "\n").c_str(), stderr);
    return parsed.ok() ? 0 : 2;
  }
  auto credentials = protos::MakeServerCredentials(tls);
  if (!credentials.ok()) {
    std::fprintf(stderr, "%s\n", credentials.status().ToString().c_str());
    return 2;
  }
  if (!token_file.empty()) {
    auto tokens = protos::ClientTokens::Load(token_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "%s\n", tokens.status().ToString().c_str());
      return 2;
    }
    options.client_tokens = *tokens;
  }
  engine::ThreadPool pool(1);
  auto snapshot = coordinator::testing::TinySnapshot(5, 1);
  coordinator::GenerateService service([snapshot] { return snapshot; }, options, pool);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), *credentials, &bound);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", bound);
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  service.Shutdown();
  server->Shutdown();
  return 0;
}
