#!/usr/bin/python3
"""Reads a lanlm checkpoint with nothing but json + struct (the safetensors layout) and checks
every value written by tests/engine/tools/write_checkpoint.cc, the data CRC32C and the header.
usage: read_checkpoint.py WRITER_TOOL"""
import json, os, struct, subprocess, sys, tempfile

def crc32c(data, crc=0):
    table = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "c.safetensors")
    tokenizer = subprocess.run([sys.argv[1], path], check=True, capture_output=True).stdout.decode("utf-8")
    blob = open(path, "rb").read()

(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]
meta = header.pop("__metadata__")
assert all(isinstance(v, str) for v in meta.values()), meta
assert meta["format"] == "lanlm.checkpoint" and meta["model.dim"] == "8" and meta["step"] == "5", meta
assert meta["tokenizer"] == tokenizer and "\u00e9" in tokenizer, repr(meta["tokenizer"])
V = int(meta["model.vocab_size"])
assert header["tok_embeddings.weight"]["shape"] == [V, 8] and header["output.weight"]["shape"] == [V, 8]
assert meta["training.shards"] == "3" and len(meta["fingerprint"]) == 16
assert int(meta["data_crc32c"], 16) == crc32c(data), "data checksum"
params = sum(4 * eval("*".join(map(str, t["shape"]))) for k, t in header.items() if not k.startswith("optim."))
patterns = {"": lambda i: (i % 97) * 0.25 - 12.0, "optim.m.": lambda i: float(i % 13 - 6),
            "optim.v.": lambda i: (i % 5) * 0.125}
for name, t in header.items():
    begin, end = t["data_offsets"]
    count = end // 4 - begin // 4
    assert t["dtype"] == "F32" and count == eval("*".join(map(str, t["shape"]))), (name, t)
    prefix = next(p for p in ("optim.m.", "optim.v.", "") if name.startswith(p))
    first = begin // 4 - {"": 0, "optim.m.": 1, "optim.v.": 2}[prefix] * (params // 4)
    values = struct.unpack("<%df" % count, data[begin:end])
    assert values == tuple(patterns[prefix](first + k) for k in range(count)), name
assert header["layers.1.feed_forward.w2.weight"]["shape"] == [8, 12]
assert sum(t["data_offsets"][1] - t["data_offsets"][0] for t in header.values()) == len(data)
print("read_checkpoint.py: %d tensors, %d bytes of data, all values match" % (len(header), len(data)))
