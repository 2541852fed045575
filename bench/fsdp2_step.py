#!/usr/bin/env python3
"""PyTorch FSDP2 training steps on the same model, batch and sequence length as `ftdist bench step`:
the baseline the GPU validation (bench/gpu_validate.sh) sets ftdist beside.

What it runs: Transformers' LlamaForCausalLM from a config (a preset below, or --config a Hugging
Face config.json), SDPA attention, `fully_shard` on each decoder layer and on the root with
MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32) (ftdist's bf16-mixed with fp32
reductions), fp32 master parameters and torch.optim.AdamW on them, optional full activation
checkpointing of every decoder layer, fresh random tokens each step. Launched as one process per GPU (torchrun, or
plain `python3` for world size 1: the rendezvous defaults to localhost).

Prints a table of steps and one machine-readable line for bench/gpu_compare.py:
  FSDP2_RESULT {"tokens_per_s": ..., "peak_allocated": ..., "peak_reserved": ..., ...}

usage: python3 bench/fsdp2_step.py [--preset tinyllama-1.1b | --config config.json] [--layers N]
         [--micro-batch 4] [--seq-len 2048] [--checkpointing none|full] [--steps 5] [--warmup 2]
         [--device cuda|cpu]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist

# The shapes of ftdist's presets (src/plan/presets.cpp), as Hugging Face config keys.
PRESETS = {
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
                           tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=10000.0),
    # Small enough to check this script on a CPU.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, tie_word_embeddings=False,
                 rms_norm_eps=1e-5, rope_theta=10000.0),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tinyllama-1.1b", choices=sorted(PRESETS))
    p.add_argument("--config", help="a Hugging Face config.json (instead of --preset)")
    p.add_argument("--layers", type=int, help="override the number of decoder layers")
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--checkpointing", choices=["none", "full"], default="none")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args()


def llama_config(args):
    from transformers import LlamaConfig
    if args.config:
        try:
            with open(args.config) as f:
                keys = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            sys.exit(f"fsdp2_step: cannot read --config {args.config}: {e}")
    else:
        keys = dict(PRESETS[args.preset])
    if args.layers:
        keys["num_hidden_layers"] = args.layers
    cfg = LlamaConfig(**{k: v for k, v in keys.items() if k not in ("architectures", "model_type")})
    cfg._attn_implementation = "sdpa"
    cfg.use_cache = False
    return cfg


def build_model(cfg, device, checkpointing):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):  # fp32 parameters made on the device (the master copy FSDP2 shards)
        model = LlamaForCausalLM(cfg)
    model.train()
    if checkpointing == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def make_optimizer(model, device):
    # fused=True is PyTorch's fastest AdamW on a GPU; where it refuses the sharded parameters, the
    # default (foreach) implementation. Which one ran is printed.
    if device == "cuda":
        try:
            return torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0, fused=True), "fused"
        except (RuntimeError, ValueError) as e:
            print(f"fsdp2_step: fused AdamW refused ({e}); using foreach", flush=True)
    return torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0), "foreach"


def main():
    args = parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(args.device, local_rank) if args.device == "cuda" else torch.device("cpu")

    cfg = llama_config(args)
    model = build_model(cfg, device, args.checkpointing)
    n_params = sum(p.numel() for p in model.parameters())
    opt, opt_kind = make_optimizer(model, args.device)
    gen = torch.Generator(device="cpu").manual_seed(1 + rank)

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    def step():  # fresh random tokens each step, drawn on the host and copied, as `ftdist bench step` does
        tokens = torch.randint(0, cfg.vocab_size, (args.micro_batch, args.seq_len + 1), generator=gen).to(device)
        inputs, labels = tokens[:, :-1], tokens[:, 1:].contiguous()
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    if rank == 0:
        print(f"fsdp2 step: {n_params} parameters, {cfg.num_hidden_layers} layers, world {world}, {args.device}, "
              f"bf16 params / fp32 reduce, AdamW {opt_kind}, sdpa, checkpointing {args.checkpointing}, "
              f"micro-batch {args.micro_batch} x {args.seq_len} tokens", flush=True)
        print(f"{'step':>6s} {'loss':>10s} {'step s':>12s} {'tokens/s':>14s}", flush=True)
    for _ in range(args.warmup):
        step()
    sync()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
        if rank == 0:
            tok = args.micro_batch * args.seq_len / times[-1]
            print(f"{i + 1:6d} {loss.item():10.4f} {times[-1]:12.3f} {tok:14.0f}", flush=True)
    mean = sum(times) / len(times)
    result = {
        "world": world,
        "parameters": n_params,
        "checkpointing": args.checkpointing,
        "micro_batch": args.micro_batch,
        "seq_len": args.seq_len,
        "optimizer": opt_kind,
        "step_s": mean,
        "tokens_per_s": args.micro_batch * args.seq_len * world / mean,
        "tokens_per_s_per_rank": args.micro_batch * args.seq_len / mean,
        "peak_allocated": torch.cuda.max_memory_allocated(device) if args.device == "cuda" else None,
        "peak_reserved": torch.cuda.max_memory_reserved(device) if args.device == "cuda" else None,
    }
    if args.device == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        result["device_used"] = total - free
    if rank == 0:
        print("FSDP2_RESULT " + json.dumps(result), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
