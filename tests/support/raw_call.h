// RawCall: one gRPC call with hand-made request bytes over a real channel (grpc::GenericStub),
// for tests that feed a server messages no typed stub can produce (random bytes, invalid
// UTF-8) or call services without generated C++ code here (health, reflection). Unary methods
// take it too: on the wire a unary call is one message each way.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lanlm::testing {

struct RawResult {
  grpc::Status status;
  std::vector<std::string> replies;  // every message the server sent, as bytes
};

// Sends each of `requests` as one message of `method` ("/package.Service/Method"), half-closes,
// reads until the server ends the call and returns its status and messages.
inline RawResult RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                         const std::vector<std::string>& requests,
                         const std::multimap<std::string, std::string>& metadata = {}, double deadline_s = 20.0) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(deadline_s)));
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  RawResult result;
  auto call = stub.PrepareCall(&context, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  for (const std::string& request : requests) {
    if (!ok) break;
    grpc::Slice slice(request);
    grpc::ByteBuffer bytes(&slice, 1);
    call->Write(bytes, reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
  }
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  while (true) {
    grpc::ByteBuffer bytes;
    call->Read(&bytes, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    if (!ok) break;
    std::vector<grpc::Slice> slices;
    (void)bytes.Dump(&slices);
    std::string text;
    for (const grpc::Slice& s : slices) text.append(reinterpret_cast<const char*>(s.begin()), s.size());
    result.replies.push_back(std::move(text));
  }
  call->Finish(&result.status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

}  // namespace lanlm::testing
