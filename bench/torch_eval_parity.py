#!/usr/bin/env python3
"""lanlm eval beside PyTorch on the same checkpoint and the same token ids (issue 10's parity
figure): fp32 vs fp32, and lanlm's `--precision bf16` vs PyTorch's CPU bf16 autocast.

The checkpoint's tensors are loaded into shared/anchors/torch_ref.py's Transformer (the same
model: pre-norm RMSNorm eps 1e-5, RoPE on adjacent pairs, SwiGLU, untied classifier); the ids
come from `lanlm tokenize`, cut into the windows `lanlm eval` scores (window w = ids[wT .. wT+T],
neighbours sharing one token). Prints each side's mean loss and the relative differences.

The two bf16 modes are not the same arithmetic, so they are not expected to agree bit for bit:
lanlm rounds only the weight matmuls' inputs and keeps their outputs, attention, norms and the
loss in fp32 (docs/TRAINING.md); autocast also runs attention's matmuls in bf16 and returns
bf16 tensors from every matmul. The figure to read is how far each bf16 loss moves from its own
fp32 loss, and how far the two bf16 losses are apart, against bf16's unit roundoff (2^-8).

Usage: /usr/bin/python3 bench/torch_eval_parity.py --lanlm build/client/lanlm \
           --checkpoint C.safetensors --text held-out.txt [--max-windows N] [--anchors ../shared/anchors]
(needs python3-torch, Debian's /usr/bin/python3)"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys

import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} has dtype {meta['dtype']}, expected F32")
        b, e = meta["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(meta["shape"])
    return tensors, header.get("__metadata__", {})


def torch_name(name):
    """lanlm's tensor names (DESIGN.md §2) -> torch_ref.py's parameter names."""
    rules = [
        (r"^tok_embeddings\.weight$", "tok_emb.weight"),
        (r"^norm\.weight$", "norm.weight"),
        (r"^output\.weight$", "out.weight"),
        (r"^layers\.(\d+)\.attention_norm\.weight$", r"layers.\1.attn_norm.weight"),
        (r"^layers\.(\d+)\.ffn_norm\.weight$", r"layers.\1.ffn_norm.weight"),
        (r"^layers\.(\d+)\.attention\.(w[qkvo])\.weight$", r"layers.\1.attn.\2.weight"),
        (r"^layers\.(\d+)\.feed_forward\.(w[123])\.weight$", r"layers.\1.ffn.\2.weight"),
    ]
    for rx, repl in rules:
        if re.match(rx, name):
            return re.sub(rx, repl, name)
    return None


def lanlm_loss(lanlm, checkpoint, text, precision, max_windows):
    out = subprocess.run([lanlm, "eval", "--checkpoint", checkpoint, "--text", text, "--precision", precision,
                          "--max-windows", str(max_windows)], check=True, capture_output=True, text=True).stdout
    m = re.search(r"loss=([0-9.]+).*tokens=(\d+)", out)
    if not m:
        raise SystemExit(f"unexpected lanlm eval output: {out!r}")
    return float(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lanlm", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--max-windows", type=int, default=32)
    ap.add_argument("--anchors", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                                     "anchors"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, args.anchors)
    from torch_ref import Transformer  # noqa: E402

    torch.set_num_threads(args.threads)
    tensors, meta = read_safetensors(args.checkpoint)
    params = {torch_name(k): v for k, v in tensors.items() if torch_name(k) is not None}
    try:  # the model config lanlm writes into the checkpoint's metadata
        V, C, L, nh, H, T = (int(meta["model." + k]) for k in
                             ("vocab_size", "dim", "n_layers", "n_heads", "ffn_hidden", "context"))
    except KeyError as e:
        raise SystemExit(f"{args.checkpoint}: no model config in its metadata ({e} missing)")
    ids_text = subprocess.run([args.lanlm, "tokenize", "--checkpoint", args.checkpoint, "--text", args.text],
                              check=True, capture_output=True, text=True).stdout
    ids = torch.tensor([int(t) for t in ids_text.split()], dtype=torch.long)
    model = Transformer(V=V, C=C, L=L, nh=nh, H=H, T=T)
    missing = set(dict(model.named_parameters())) - set(params)
    if missing:
        raise SystemExit(f"checkpoint lacks {sorted(missing)}")
    model.load_state_dict(params, strict=False)
    model.eval()

    windows = min(args.max_windows, (len(ids) - 1) // T)
    x = torch.stack([ids[w * T:w * T + T] for w in range(windows)])
    y = torch.stack([ids[w * T + 1:w * T + T + 1] for w in range(windows)])
    results = {}
    with torch.no_grad():
        results["torch fp32"] = F.cross_entropy(model(x).float().reshape(-1, V), y.reshape(-1)).item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        results["torch bf16 autocast"] = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1)).item()
    for p in ("fp32", "bf16"):
        loss, tokens = lanlm_loss(args.lanlm, args.checkpoint, args.text, p, windows)
        if tokens != windows * T:
            raise SystemExit(f"lanlm eval scored {tokens} tokens, expected {windows * T}")
        results[f"lanlm {p}"] = loss

    print(f"checkpoint {args.checkpoint}: V={V} C={C} L={L} NH={nh} F={H} T={T}; {windows} windows, {windows * T} "
          f"predictions (lanlm prints 4 decimals)")
    for k, v in results.items():
        print(f"  {k:22s} loss {v:.6f}")

    def rel(a, b):
        return 100.0 * (results[a] - results[b]) / results[b]

    print(f"  lanlm fp32 vs torch fp32:            {rel('lanlm fp32', 'torch fp32'):+.4f} %")
    print(f"  lanlm bf16 vs its fp32:              {rel('lanlm bf16', 'lanlm fp32'):+.4f} %")
    print(f"  torch bf16 autocast vs its fp32:     {rel('torch bf16 autocast', 'torch fp32'):+.4f} %")
    print(f"  lanlm bf16 vs torch bf16 autocast:   {rel('lanlm bf16', 'torch bf16 autocast'):+.4f} %")


if __name__ == "__main__":
    main()
