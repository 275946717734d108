#!/usr/bin/env python3
"""Runs client/examples/generate.py against a real Generate server (a test server process
with a fixed random-weight model), so protos/generate.proto stays usable from Python.

usage: generate_example_test.py SERVER_BINARY EXAMPLE_SCRIPT PYTHON_PROTO_DIR
"""
import os
import subprocess
import sys


def main():
    server_bin, example, proto_dir = sys.argv[1:4]
    server = subprocess.Popen([server_bin, "--port", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
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
        return 0
    finally:
        server.stdin.close()  # the server exits when its stdin closes
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
