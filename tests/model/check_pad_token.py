"""pad_token_id: the embedding row no lookup trains, as Transformers' padding_idx.

A tiny Llama (untied, then tied) whose config.json names a pad_token_id that occurs in the data
takes one plain SGD step in `ftdist train` (fp32, lr 0.5, no momentum, decay or clipping, one batch
of four documents) and exports it; each exported tensor must differ from the original by lr times
Transformers' gradient of the same loss. Untied, the pad row of the embeddings must not move at
all; tied, it moves by the lm_head's gradient alone, as in Transformers.

usage: check_pad_token.py FTDIST WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig

SEQ, DOCS, LR, PAD = 32, 4, 0.5, 7


def main():
    binary, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 60, (DOCS, SEQ), generator=gen)
    ids[:, ::5] = PAD  # the pad id as an input (and a label) in every document
    data = os.path.join(work, "data.jsonl")
    with open(data, "w") as f:
        f.write("".join(json.dumps({"input_ids": row.tolist()}) + "\n" for row in ids))
    failures = 0
    for tied in (False, True):
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, tie_word_embeddings=tied, pad_token_id=PAD, bos_token_id=None, eos_token_id=None)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
        model_dir = os.path.join(work, f"model-tied{int(tied)}")
        model.save_pretrained(model_dir)
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        out = os.path.join(work, f"run-tied{int(tied)}")
        toml = os.path.join(work, f"tied{int(tied)}.toml")
        with open(toml, "w") as f:
            f.write(f'[model]\npath = "{model_dir}"\n[data]\ntrain = "{data}"\nseq_len = {SEQ}\npacking = "documents"\n'
                    f'[train]\nsteps = 1\nmicro_batch = 1\nglobal_batch = {DOCS}\nlr = {LR}\nwarmup_steps = 0\n'
                    'schedule = "constant"\noptimizer = "sgd-momentum"\nmomentum = 0.0\nweight_decay = 0.0\ngrad_clip = 0.0\n'
                    f'[parallel]\ndevice = "cpu"\nprecision = "fp32"\n[output]\ndir = "{out}"\nexport = true\nexport_dtype = "fp32"\n')
        p = subprocess.run([binary, "train", "--config", toml], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"FAIL tied={tied}: ftdist train exit {p.returncode}: {p.stderr[-2000:]}")
            failures += 1
            continue
        got = {}
        for name in os.listdir(os.path.join(out, "hf")):
            if name.endswith(".safetensors"):
                got.update(load_file(os.path.join(out, "hf", name)))
        worst, where = 0.0, ""
        for name, param in model.named_parameters():
            if name not in got:
                continue  # (a tied lm_head)
            step = param.detach() - got[name].float()
            want = LR * param.grad
            rel = float((step - want).abs().max()) / max(1e-12, float(want.abs().max()))
            if rel > worst:
                worst, where = rel, name
        moved = float((got["model.embed_tokens.weight"][PAD] - model.model.embed_tokens.weight.detach()[PAD]).abs().max())
        ok = worst <= 1e-3 and (tied or moved == 0.0)
        print(f"{'ok  ' if ok else 'FAIL'} tied={tied}: every tensor moved by lr x Transformers' gradient (worst relative "
              f"difference {worst:.2e} in {where}); the pad row moved by {moved:.3e}{'' if tied else ' (must be 0)'}")
        failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
