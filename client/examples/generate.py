#!/usr/bin/env python3
"""Streams a generation from lanlm-coordinator's Generate service (protos/generate.proto).

An example of using the service from outside C++. Generate the Python code first:

    protoc -I protos --python_out=OUT --grpc_out=OUT \
        --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin protos/generate.proto
    PYTHONPATH=OUT /usr/bin/python3 client/examples/generate.py --server localhost:50051 \
        --prompt "In the beginning"

(Debian 12: python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc.)
Over TLS give --tls-ca ca.crt (and --tls-cert/--tls-key where the server requires client
certificates, deploy/make-certs.sh); a server with --client-token-file needs --token-file FILE
or LANLM_CLIENT_TOKEN.
Text goes to stdout as it arrives; the finish reason, token counts and speed go to stderr.
"""
import argparse
import os
import queue
import sys

import grpc

import generate_pb2
import generate_pb2_grpc


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(server, tls_ca="", tls_cert="", tls_key="", server_name=""):
    """A plaintext channel, or TLS (mutual with a client certificate) like lanlm --tls-*."""
    if not tls_ca and not tls_cert:
        return grpc.insecure_channel(server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_file(tls_ca) if tls_ca else None,
        private_key=read_file(tls_key) if tls_key else None,
        certificate_chain=read_file(tls_cert) if tls_cert else None)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(server, credentials, options=options)


def client_token(token_file):
    """The first token of token_file (as lanlm --token-file reads it), else LANLM_CLIENT_TOKEN."""
    if token_file:
        for line in read_file(token_file).decode().splitlines():
            if line.strip() and not line.strip().startswith("#"):
                return line.strip()
        raise ValueError(f"--token-file {token_file}: holds no token")
    return os.environ.get("LANLM_CLIENT_TOKEN", "").strip()


def generate(server, prompt, max_new_tokens, temperature, seed, stop, deadline_s, out=sys.stdout, channel=None,
             token=""):
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
    metadata = [("authorization", "Bearer " + token)] if token else None
    with channel or grpc.insecure_channel(server) as channel:
        stub = generate_pb2_grpc.GenerateStub(channel)
        for event in stub.Generate(request_iterator(), timeout=deadline_s, metadata=metadata):
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
    parser.add_argument("--tls-ca", default="", help="dial over TLS, trusting this PEM CA")
    parser.add_argument("--tls-cert", default="", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-server-name", default="", help="expect this name in the server's certificate")
    parser.add_argument("--token-file", default="", help="client token file (else LANLM_CLIENT_TOKEN)")
    args = parser.parse_args()
    try:
        channel = open_channel(args.server, args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
        done, _ = generate(args.server, args.prompt, args.max_new_tokens, args.temperature, args.seed,
                           args.stop, args.deadline, channel=channel, token=client_token(args.token_file))
    except (OSError, ValueError) as error:
        print(f"generate.py: {error}", file=sys.stderr)
        return 2
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
