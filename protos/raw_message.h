// Parsing and serializing messages of methods registered raw (grpc::ByteBuffer, the generated
// WithRawCallbackMethod_X): gRPC parses a typed method's request before any handler runs and
// answers one that does not parse on its own terms (a bidi stream ends OK with no events, a
// unary call gets UNIMPLEMENTED with an empty message). Parsed here, such a request gets
// INVALID_ARGUMENT naming its message type. libprotobuf's log line about it goes through
// protos/library_logs.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "engine/base/status.h"

namespace lanlm::protos {

template <typename Message>
Status ParseRaw(grpc::ByteBuffer& bytes, Message* message) {
  if (grpc::SerializationTraits<Message>::Deserialize(&bytes, message).ok()) return OkStatus();
  return InvalidArgumentError("malformed " + message->GetTypeName() +
                              ": the bytes do not parse as this message (truncated, wrong field types, or invalid "
                              "UTF-8 in a string field)");
}

template <typename Message>
grpc::Status SerializeRaw(const Message& message, grpc::ByteBuffer* bytes) {
  bool own_buffer = false;
  return grpc::SerializationTraits<Message>::Serialize(message, bytes, &own_buffer);
}

}  // namespace lanlm::protos
