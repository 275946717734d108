#!/usr/bin/env python3
"""The layer check (DESIGN.md §1), run by ctest: fails when a source file includes across a
forbidden arrow.

  engine/       -> the C++ standard library, the POSIX file calls and CPU intrinsics it lists
                   below, and engine/ itself; nlohmann/json only in engine/io/ (file formats)
  protos/       -> not coordinator/, worker/, client/, bench/
  ops/          -> not protos/, coordinator/, worker/, client/, bench/
  coordinator/  -> not worker/, client/, bench/
  worker/       -> not coordinator/, client/, bench/
  client/       -> not coordinator/, worker/, bench/
  bench/        -> engine/ and bench/ only

Usage: check_layers.py ROOT      check the tree at ROOT; prints one line per violation
       check_layers.py --self-test   feed the check wrong-way includes and expect each caught
"""
import os
import re
import sys
import tempfile

STD = set("""algorithm any array atomic barrier bit bitset cassert cctype cerrno cfloat charconv chrono cinttypes
climits clocale cmath compare complex concepts condition_variable coroutine csignal cstdarg cstddef cstdint cstdio
cstdlib cstring ctime cwchar deque exception execution filesystem format forward_list fstream functional future
initializer_list iomanip ios iosfwd iostream istream iterator latch limits list locale map memory memory_resource
mutex new numbers numeric optional ostream queue random ranges ratio regex scoped_allocator semaphore set
shared_mutex source_location span sstream stack stdexcept stop_token streambuf string string_view system_error
thread tuple type_traits typeindex typeinfo unordered_map unordered_set utility valarray variant vector
version""".split())
# Outside the C++ library, what the engine may use: POSIX file calls (atomic checkpoint writes)
# and x86 intrinsics (kernels, CRC32C).
ENGINE_SYSTEM = {"unistd.h", "fcntl.h", "sys/stat.h", "immintrin.h", "nmmintrin.h"}
ENGINE_IO_ONLY = {"nlohmann/json.hpp"}

FORBIDDEN = {
    "protos": ("coordinator/", "worker/", "client/", "bench/"),
    "ops": ("protos/", "coordinator/", "worker/", "client/", "bench/"),
    "coordinator": ("worker/", "client/", "bench/"),
    "worker": ("coordinator/", "client/", "bench/"),
    "client": ("coordinator/", "worker/", "bench/"),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SOURCE_EXT = (".h", ".cc", ".hpp", ".cpp")


def violation(rel, quote, header):
    """Why including `header` from source file `rel` crosses a forbidden arrow, or None."""
    top = rel.split("/", 1)[0]
    if top == "engine":
        if quote == '"':
            return None if header.startswith("engine/") else "engine includes only itself"
        if header in STD or header in ENGINE_SYSTEM:
            return None
        if header in ENGINE_IO_ONLY and rel.startswith("engine/io/"):
            return None
        return "engine includes only the standard library and itself"
    if top == "bench":
        if quote == '"' and not header.startswith(("engine/", "bench/")):
            return "bench includes only engine/ and bench/"
        return None
    if quote == '"' and header.startswith(FORBIDDEN.get(top, ())):
        return f"{top}/ may not include {header.split('/', 1)[0]}/"
    return None


def check(root):
    problems = []
    for top in ("engine", "protos", "coordinator", "worker", "client", "bench"):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        why = m and violation(rel, m.group(1), m.group(2))
                        if why:
                            close = ">" if m.group(1) == "<" else '"'
                            problems.append(f"{rel}:{number}: #include {m.group(1)}{m.group(2)}{close}: {why}")
    return problems


def self_test():
    wrong = {
        "engine/ops/bad.cc": "#include <grpcpp/grpcpp.h>",
        "engine/model/bad.h": '#include "coordinator/training_run.h"',
        "engine/train/bad.cc": "#include <nlohmann/json.hpp>",
        "coordinator/bad.cc": '#include "worker/worker.h"',
        "worker/bad.cc": '#include "coordinator/training_run.h"',
        "protos/bad.cc": '#include "client/commands.h"',
        "client/bad.cc": '#include "coordinator/run_config.h"',
        "bench/bad.cc": '#include "protos/convert.h"',
    }
    right = {
        "engine/io/good.cc": '#include <nlohmann/json.hpp>\n#include "engine/base/status.h"\n#include <vector>',
        "coordinator/good.cc": '#include "protos/convert.h"\n#include "engine/base/status.h"\n#include <grpcpp/grpcpp.h>',
    }
    with tempfile.TemporaryDirectory() as root:
        for rel, text in {**wrong, **right}.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write("// fixture\n" + text + "\n")
        problems = check(root)
    caught = {p.split(":", 1)[0] for p in problems}
    missed = sorted(set(wrong) - caught)
    false_alarms = sorted(caught - set(wrong))
    for p in problems:
        print("caught:", p)
    if missed or false_alarms:
        print("self-test FAILED: missed", missed, "false alarms", false_alarms)
        return 1
    print(f"self-test passed: {len(wrong)} wrong-way includes caught, {len(right)} allowed ones accepted")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"layer check: {len(problems)} include(s) cross a forbidden arrow (DESIGN.md §1)")
        return 1
    print("layer check: every include follows the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
