#!/usr/bin/env python3
"""Streams a generation from lanlm-coordinator's Generate service (protos/generate.proto).

An example of using the service from outside C++. Generate the Python code first:

    protoc -I protos --python_out=OUT --grpc_out=OUT \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin protos/generate.proto
    PYTHONPATH=OUT /usr/bin/python3 client/examples/generate.py --server localhost:50051 \
        --prompt "In the beginning"

(Debian 12: python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc.)
Text goes to stdout as it arrives; the finish reason, token counts and speed go to stderr.
"""
import argparse
import queue
import sys

import grpc

import generate_pb2
import generate_pb2_grpc


def generate(server, prompt, max_new_tokens, temperature, seed, stop, deadline_s, out=sys.stdout):
    """Runs one start request on a new session, closes the session, returns the Done event."""
    requests = queue.Queue()
    start = generate_pb2.StartRequest(prompt=prompt)
    start.sampling.temperature = temperature
    start.sampling.seed = seed
    if max_new_tokens > 0:
        start.stopping.max_new_tokens = max_new_tokens
    start.stopping.stop.extend(stop)
    requests.put(generate_pb2.GenerateRequest(start=start))

    def request_iterator():
        while True:
            request = requests.get()
            if request is None:
                return
            yield request

    done = None
    text = []
    with grpc.insecure_channel(server) as channel:
        stub = generate_pb2_grpc.GenerateStub(channel)
        for event in stub.Generate(request_iterator(), timeout=deadline_s):
            kind = event.WhichOneof("event")
            if kind == "opened":
                print(f"session {event.opened.session_id} pinned to parameter version "
                      f"{event.opened.parameter_version} ({event.opened.model_config})", file=sys.stderr)
            elif kind == "token":
                text.append(event.token.text)
                out.write(event.token.text)
                out.flush()
            elif kind == "done":
                done = event.done
                text.append(done.text_delta)
                out.write(done.text_delta + "\n")
                # The session is no longer needed: close it, then end the stream.
                requests.put(generate_pb2.GenerateRequest(close=generate_pb2.CloseRequest()))
            elif kind == "closed":
                requests.put(None)
    return done, "".join(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=0, help="0 = server default")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[])
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds")
    args = parser.parse_args()
    try:
        done, _ = generate(args.server, args.prompt, args.max_new_tokens, args.temperature, args.seed,
                           args.stop, args.deadline)
    except grpc.RpcError as error:
        print(f"generate.py: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    reason = generate_pb2.FinishReason.Name(done.reason)
    print(f"[{reason}] {done.usage.generated_tokens} tokens (prompt {done.usage.prompt_tokens}, "
          f"cached {done.usage.cached_tokens}), first token {done.time_to_first_token_s:.3f} s, "
          f"{done.tokens_per_second:.1f} tokens/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
