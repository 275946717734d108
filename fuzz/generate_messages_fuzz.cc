// libFuzzer target: Generate requests (protos/generate.proto) through the real Generate
// service (coordinator/generate_service.h: protos/generate_convert and the reactor's
// validation, sessions, decoding) on an in-process channel, with a tiny random-weight model.
// Input: up to 8 requests, each a 2-byte little-endian length then that many bytes of a
// serialised GenerateRequest (bytes that do not parse are skipped: gRPC refuses them before
// the service sees them; a start without a session id gets "fz<i>" so the harness knows every
// id). The last byte's low bit picks how the client leaves: half-close (its sessions stay and
// the harness closes them afterwards) or cancel mid-stream (when the cancel ended the call,
// the service must have freed every session by itself; checked).
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/generate_service.h"
#include "engine/base/check.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"
#include "protos/generate.grpc.pb.h"

namespace {

using lanlm::v1::GenerateEvent;
using lanlm::v1::GenerateRequest;
namespace coordinator = lanlm::coordinator;
namespace engine = lanlm::engine;

std::shared_ptr<const coordinator::ParamSnapshot> TinySnapshot() {
  auto tokenizer = engine::BpeTokenizer::Train("the cat sat on the mat. the dog sat on the log.\ncaf\xC3\xA9 \xE2\x82\xAC\n", 60);
  LANLM_CHECK(tokenizer.ok(), tokenizer.status().ToString());
  auto snapshot = std::make_shared<coordinator::ParamSnapshot>();
  snapshot->config.vocab_size = tokenizer->vocab_size();
  snapshot->config.dim = 16;
  snapshot->config.n_layers = 1;
  snapshot->config.n_heads = 2;
  snapshot->config.ffn_hidden = 32;
  snapshot->config.context = 32;
  snapshot->params.resize(static_cast<size_t>(engine::ParameterCount(snapshot->config)));
  engine::InitParameters(snapshot->config, 5, 0.5f, snapshot->params.data());
  snapshot->version = 1;
  snapshot->tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer).value());
  return snapshot;
}

// One service for the whole run (never torn down: libFuzzer exits the process).
struct Harness {
  Harness() : pool(1) {
    coordinator::GenerateServiceOptions options;
    options.max_sessions = 8;
    options.max_kv_mib = 16;
    options.max_prompt_bytes = 4096;
    auto snapshot = TinySnapshot();
    service = std::make_unique<coordinator::GenerateService>([snapshot] { return snapshot; }, options, pool);
    grpc::ServerBuilder builder;
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    LANLM_CHECK(server != nullptr, "in-process Generate server did not start");
    stub = lanlm::v1::Generate::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
  }
  bool WaitNoSessions() {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      if (service->Stats().sessions == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  engine::ThreadPool pool;
  std::unique_ptr<coordinator::GenerateService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<lanlm::v1::Generate::Stub> stub;
};

Harness& TheHarness() {
  static Harness* harness = new Harness();
  return *harness;
}

std::vector<GenerateRequest> Requests(const uint8_t* data, size_t size) {
  std::vector<GenerateRequest> requests;
  size_t at = 0;
  while (at + 2 <= size && requests.size() < 8) {
    const size_t n = std::min<size_t>(data[at] | (size_t{data[at + 1]} << 8), size - at - 2);
    GenerateRequest request;
    if (request.ParseFromArray(data + at + 2, static_cast<int>(n))) {
      if (request.has_start() && request.start().session_id().empty()) {
        request.mutable_start()->set_session_id("fz" + std::to_string(requests.size()));
      }
      requests.push_back(std::move(request));
    }
    at += 2 + n;
  }
  return requests;
}

// The session ids the requests name.
std::set<std::string> SessionIds(const std::vector<GenerateRequest>& requests) {
  std::set<std::string> ids;
  for (const GenerateRequest& r : requests) {
    if (r.has_start()) ids.insert(r.start().session_id());
    if (r.has_continue_session()) ids.insert(r.continue_session().session_id());
    if (r.has_close()) ids.insert(r.close().session_id());
  }
  ids.erase("");
  return ids;
}

// Closes sessions a stream left open (they would otherwise fill max_sessions), one stream
// per id since NOT_FOUND ends a stream.
void CloseAll(Harness& h, const std::set<std::string>& ids) {
  for (const std::string& id : ids) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = h.stub->Generate(&context);
    GenerateRequest close;
    close.mutable_close()->set_session_id(id);
    stream->Write(close);
    stream->WritesDone();
    GenerateEvent event;
    while (stream->Read(&event)) {
    }
    (void)stream->Finish();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);  // parse errors of fuzzed bytes are expected, not news
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Harness& h = TheHarness();
  const bool cancel = (data[size - 1] & 1) != 0;
  const std::vector<GenerateRequest> requests = Requests(data, size - 1);
  grpc::Status status;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = h.stub->Generate(&context);
    // Reads on their own thread, as a real client does: the in-process transport hands a
    // message over only when the other side reads, so write-all-then-read would deadlock.
    std::atomic<int> events{0};
    std::thread reader([&] {
      GenerateEvent event;
      while (stream->Read(&event)) {
        if (event.has_token()) LANLM_CHECK(event.token().id() >= 0, "negative token id");
        events.fetch_add(1);
      }
    });
    for (const GenerateRequest& request : requests) {
      if (!stream->Write(request)) break;
    }
    if (cancel) {
      // Leave in the middle: after the first event (or 50 ms), cancel the call.
      for (int i = 0; i < 50 && events.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      context.TryCancel();
    } else {
      stream->WritesDone();
    }
    reader.join();
    status = stream->Finish();
    LANLM_CHECK(status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED, "a Generate stream hung for 20 s");
    LANLM_CHECK(status.ok() || !status.error_message().empty() || cancel,
                "a Generate stream failed with code " + std::to_string(status.error_code()) + " and no message");
  }
  if (cancel && status.error_code() == grpc::StatusCode::CANCELLED) {
    LANLM_CHECK(h.WaitNoSessions(), "a cancelled stream left sessions open");
  }
  CloseAll(h, SessionIds(requests));
  return 0;
}
