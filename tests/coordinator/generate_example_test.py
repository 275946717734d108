#!/usr/bin/env python3
"""Runs client/examples/generate.py against a real Generate server (a test server process
with a fixed random-weight model), so protos/generate.proto stays usable from Python.

Then the same over mutual TLS with a client token (certificates from deploy/make-certs.sh),
when openssl is installed: the example's --tls-* and --token-file flags work, and without a
client certificate the server refuses it.

usage: generate_example_test.py SERVER_BINARY EXAMPLE_SCRIPT PYTHON_PROTO_DIR [MAKE_CERTS]
"""
import os
import shutil
import subprocess
import sys
import tempfile


def start_server(server_bin, extra=()):
    return subprocess.Popen([server_bin, "--port", "0", *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def stop_server(server):
    server.stdin.close()  # the server exits when its stdin closes
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def run_tls(server_bin, example, env, make_certs):
    """The example over mutual TLS with a token; 0 when it works and a certificate-less try fails."""
    folder = tempfile.mkdtemp(prefix="lanlm-example-tls-")
    try:
        subprocess.run(["bash", make_certs, folder, "127.0.0.1"], check=True, capture_output=True, timeout=60)
        with open(os.path.join(folder, "tokens"), "w") as f:
            f.write("example-token\n")
        c = lambda name: os.path.join(folder, name)
        server = start_server(server_bin, ["--tls-cert", c("server.crt"), "--tls-key", c("server.key"),
                                           "--tls-client-ca", c("ca.crt"), "--client-token-file", c("tokens")])
        try:
            address = server.stdout.readline().split()[-1]
            base = [sys.executable, example, "--server", address, "--prompt", "the cat", "--max-new-tokens", "4",
                    "--tls-ca", c("ca.crt")]
            good = subprocess.run(base + ["--tls-cert", c("client.crt"), "--tls-key", c("client.key"),
                                          "--token-file", c("tokens")],
                                  env=env, capture_output=True, text=True, timeout=60)
            if good.returncode != 0 or "4 tokens" not in good.stderr:
                print(f"TLS example failed ({good.returncode}): {good.stderr}", file=sys.stderr)
                return 1
            bare = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
            if bare.returncode != 1 or "UNAVAILABLE" not in bare.stderr:
                print(f"expected UNAVAILABLE without a client certificate, got {bare.returncode}: {bare.stderr}",
                      file=sys.stderr)
                return 1
            return 0
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    server_bin, example, proto_dir = sys.argv[1:4]
    make_certs = sys.argv[4] if len(sys.argv) > 4 else ""
    server = start_server(server_bin)
    try:
        line = server.stdout.readline()
        if not line.startswith("listening on "):
            print(f"test server did not start: {line!r}", file=sys.stderr)
            return 1
        address = line.split()[-1]
        env = dict(os.environ, PYTHONPATH=proto_dir)
        run = subprocess.run([sys.executable, example, "--server", address, "--prompt", "the cat",
                              "--max-new-tokens", "12", "--seed", "3", "--temperature", "1.0"],
                             env=env, capture_output=True, text=True, timeout=60)
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        if run.returncode != 0:
            print(f"example exited with {run.returncode}", file=sys.stderr)
            return 1
        if "12 tokens" not in run.stderr or "pinned to parameter version 1" not in run.stderr:
            print("example output lacks the done summary or the opened event", file=sys.stderr)
            return 1
        # An error case: the server's code reaches Python.
        bad = subprocess.run([sys.executable, example, "--server", address, "--prompt", "x",
                              "--max-new-tokens", "1000"], env=env, capture_output=True, text=True, timeout=60)
        if bad.returncode != 1 or "OUT_OF_RANGE" not in bad.stderr:
            print(f"expected OUT_OF_RANGE, got {bad.returncode}: {bad.stderr}", file=sys.stderr)
            return 1
    finally:
        stop_server(server)
    if make_certs and shutil.which("openssl"):
        return run_tls(server_bin, example, env, make_certs)
    print("openssl not installed: the TLS half is skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
