// Test fixtures for the Generate service: a fixed random-weight snapshot with a tiny
// tokenizer, an in-process server on localhost:0, and a blocking stream helper.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/generate_service.h"
#include "engine/model/parameters.h"
#include "protos/generate.grpc.pb.h"
#include "tests/support/tiny.h"

namespace lanlm::coordinator::testing {

inline const char* kTinyCorpus =
    "the cat sat on the mat. the dog sat on the log.\n"
    "h\xC3\xA9llo w\xC3\xB6rld, caf\xC3\xA9 cr\xC3\xA8me br\xC3\xBBl\xC3\xA9"
    "e \xE2\x82\xAC 5 \xF0\x9F\x98\x80 smile\n"
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 the end.\n";

inline std::shared_ptr<const engine::BpeTokenizer> TinyTokenizer() {
  static std::shared_ptr<const engine::BpeTokenizer> tokenizer = [] {
    auto t = engine::BpeTokenizer::Train(kTinyCorpus, 120);
    LANLM_CHECK(t.ok(), t.status().ToString());
    return std::make_shared<const engine::BpeTokenizer>(std::move(t).value());
  }();
  return tokenizer;
}

// The served model: tests/support's tiny sizes, wider and with a longer context.
inline engine::ModelConfig ServedConfig() {
  return test_support::TinyConfig(
      {.vocab = TinyTokenizer()->vocab_size(), .dim = 32, .ffn = 64, .context = 64});
}

inline std::shared_ptr<const ParamSnapshot> TinySnapshot(uint64_t seed, int64_t version) {
  auto snapshot = std::make_shared<ParamSnapshot>();
  snapshot->config = ServedConfig();
  snapshot->params.resize(static_cast<size_t>(engine::ParameterCount(snapshot->config)));
  engine::InitParameters(snapshot->config, seed, 0.5f, snapshot->params.data());
  snapshot->version = version;
  snapshot->tokenizer = TinyTokenizer();
  return snapshot;
}

// A model big enough that generating takes a while (about a millisecond a token), so a
// cancel or a disconnect lands in the middle of a generation.
inline std::shared_ptr<const ParamSnapshot> SlowSnapshot() {
  auto snapshot = std::make_shared<ParamSnapshot>();
  snapshot->config = ServedConfig();
  snapshot->config.dim = 128;
  snapshot->config.n_heads = 4;
  snapshot->config.n_layers = 4;
  snapshot->config.ffn_hidden = 256;
  snapshot->config.context = 256;
  snapshot->params.resize(static_cast<size_t>(engine::ParameterCount(snapshot->config)));
  engine::InitParameters(snapshot->config, 8, 0.5f, snapshot->params.data());
  snapshot->version = 1;
  snapshot->tokenizer = TinyTokenizer();
  return snapshot;
}

// A snapshot holder the test can swap (publishing a new version).
struct SnapshotBox {
  std::mutex mu;
  std::shared_ptr<const ParamSnapshot> current;
  void Publish(std::shared_ptr<const ParamSnapshot> s) {
    std::lock_guard<std::mutex> lock(mu);
    current = std::move(s);
  }
  SnapshotSource Source() {
    return [this] {
      std::lock_guard<std::mutex> lock(mu);
      return current;
    };
  }
};

class TestServer {
 public:
  // threads: the decoding pool's.
  explicit TestServer(GenerateServiceOptions options = {}, std::shared_ptr<const ParamSnapshot> snapshot = nullptr,
                      int threads = 1)
      : pool_(threads) {
    box.Publish(snapshot ? std::move(snapshot) : TinySnapshot(5, 1));
    service_ = std::make_unique<GenerateService>(box.Source(), options, pool_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    LANLM_CHECK(server_ != nullptr && port > 0, "test server did not start");
    address = "127.0.0.1:" + std::to_string(port);
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub = lanlm::v1::Generate::NewStub(channel_);
  }
  ~TestServer() {
    service_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  GenerateService& service() { return *service_; }
  // Polls until the service holds no session (releases after a disconnect are asynchronous).
  // A liveness bound, not a timing check: returns as soon as the last session is gone; the
  // generous default keeps it from failing on a loaded CI machine.
  bool WaitNoSessions(double seconds = 60.0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      const SessionStats s = service_->Stats();
      if (s.sessions == 0 && s.kv_bytes == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  SnapshotBox box;
  std::string address;
  std::unique_ptr<lanlm::v1::Generate::Stub> stub;

 private:
  engine::ThreadPool pool_;
  std::unique_ptr<GenerateService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// One blocking Generate stream.
class Stream {
 public:
  explicit Stream(lanlm::v1::Generate::Stub& stub, double deadline_s = 30.0) {
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(deadline_s)));
    rw_ = stub.Generate(&context);
  }
  bool Send(const lanlm::v1::GenerateRequest& request) { return rw_->Write(request); }
  bool Read(lanlm::v1::GenerateEvent* event) { return rw_->Read(event); }
  bool HalfClose() { return rw_->WritesDone(); }
  // Reads until a done event (returned) or the end of the stream (nullopt-like: done unset).
  std::vector<lanlm::v1::GenerateEvent> ReadUntilDone() {
    std::vector<lanlm::v1::GenerateEvent> events;
    lanlm::v1::GenerateEvent event;
    while (rw_->Read(&event)) {
      events.push_back(event);
      if (event.has_done()) break;
    }
    return events;
  }
  grpc::Status Finish() {
    rw_->WritesDone();
    lanlm::v1::GenerateEvent event;
    while (rw_->Read(&event)) {
    }
    return rw_->Finish();
  }

  grpc::ClientContext context;

 private:
  std::unique_ptr<grpc::ClientReaderWriter<lanlm::v1::GenerateRequest, lanlm::v1::GenerateEvent>> rw_;
};

// A start request with deterministic settings (no confidence stop, no EOS stop).
inline lanlm::v1::GenerateRequest Start(const std::string& prompt, int max_new_tokens, uint64_t seed = 1,
                                        const std::string& id = "") {
  lanlm::v1::GenerateRequest r;
  auto* s = r.mutable_start();
  s->set_session_id(id);
  s->set_prompt(prompt);
  s->mutable_sampling()->set_temperature(1.0f);
  s->mutable_sampling()->set_top_k(0);
  s->mutable_sampling()->set_top_p(1.0f);
  s->mutable_sampling()->set_seed(seed);
  s->mutable_stopping()->set_max_new_tokens(max_new_tokens);
  s->mutable_stopping()->set_stop_on_eos(false);
  s->mutable_stopping()->set_confidence_threshold(0.0f);
  return r;
}

inline lanlm::v1::GenerateRequest Continue(const std::string& id, const std::string& prompt, int max_new_tokens,
                                           uint64_t seed = 1) {
  lanlm::v1::GenerateRequest start = Start(prompt, max_new_tokens, seed, id);
  lanlm::v1::GenerateRequest r;
  auto* c = r.mutable_continue_session();
  c->set_session_id(id);
  c->set_prompt(prompt);
  *c->mutable_sampling() = start.start().sampling();
  *c->mutable_stopping() = start.start().stopping();
  return r;
}

inline lanlm::v1::GenerateRequest Close(const std::string& id = "") {
  lanlm::v1::GenerateRequest r;
  r.mutable_close()->set_session_id(id);
  return r;
}

inline lanlm::v1::GenerateRequest Cancel() {
  lanlm::v1::GenerateRequest r;
  r.mutable_cancel();
  return r;
}

struct Collected {
  std::vector<int32_t> ids;
  std::vector<std::string> deltas;
  std::string text;
  lanlm::v1::SessionOpened opened;
  lanlm::v1::Done done;
  bool has_done = false;
};

inline Collected Collect(const std::vector<lanlm::v1::GenerateEvent>& events) {
  Collected c;
  for (const auto& e : events) {
    if (e.has_opened()) c.opened = e.opened();
    if (e.has_token()) {
      c.ids.push_back(e.token().id());
      c.deltas.push_back(e.token().text());
      c.text += e.token().text();
    }
    if (e.has_done()) {
      c.done = e.done();
      c.has_done = true;
      c.text += e.done().text_delta();
    }
  }
  return c;
}

}  // namespace lanlm::coordinator::testing
