#!/usr/bin/env python3
"""Side-by-side reference for `forgetlab bench model`: training tokens/s (forward + backward of
the mean next-token loss, no optimizer) of Hugging Face transformers' pure-PyTorch Mamba2 for
the same configurations A and B, sequence lengths and tokens per step.

Setup (PyPI only):  python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch transformers
Run:                /tmp/refenv/bin/python benches/reference_transformers.py [--threads 2] [--steps 3]
                    [--chunk 64]   (256 is transformers' and mamba_ssm's default chunk size)
"""
import argparse
import json
import time

import torch
from transformers import Mamba2Config, Mamba2ForCausalLM


def model_for(d_model, d_state, headdim, chunk):
    d_inner = 2 * d_model
    config = Mamba2Config(
        vocab_size=8192, hidden_size=d_model, num_hidden_layers=4, state_size=d_state,
        head_dim=headdim, num_heads=d_inner // headdim, expand=2, n_groups=1, conv_kernel=4,
        chunk_size=chunk, tie_word_embeddings=True, use_cache=False,
    )
    return Mamba2ForCausalLM(config)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--tokens-per-step", type=int, default=8192)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name, (d, n, p) in {"A": (128, 16, 32), "B": (256, 64, 64)}.items():
        model = model_for(d, n, p, args.chunk)
        for seq_len in (256, 1024, 4096):
            batch = max(1, args.tokens_per_step // seq_len)
            ids = torch.randint(0, 8192, (batch, seq_len))

            def step():
                out = model(input_ids=ids, labels=ids)
                out.loss.backward()
                model.zero_grad(set_to_none=True)

            step()  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds = (time.perf_counter() - start) / args.steps
            print(json.dumps({"impl": "transformers", "model": name, "seq_len": seq_len,
                              "tokens_per_step": batch * seq_len, "threads": args.threads,
                              "tokens_per_s": batch * seq_len / seconds, "seconds_per_step": seconds}),
                  flush=True)


if __name__ == "__main__":
    main()
