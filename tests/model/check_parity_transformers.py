#!/usr/bin/env python3
"""Parity with Hugging Face Transformers (an oracle ftdist does not share code with).

Builds tiny random Llama, Llama-3.1 (llama3 rope scaling), Llama with linear and dynamic rope
scaling, Qwen3 with YaRN, Phi-3 and Llama with LongRoPE, Mistral (sliding window shorter than the
sequence; also with layer_types) and Ministral, Qwen2 (q/k/v biases, tied embeddings), Phi-3 (fused qkv_proj and gate_up_proj; also with a
partial rotary factor, a window and tied embeddings) and Qwen3 (per-head q/k RMSNorm, head_dim not
hidden / heads; tied, and untied with attention biases and windowed upper layers) models with
Transformers, saves them with
save_pretrained in fp32 and bf16, runs `ftdist eval` on the same token file and compares the mean
loss and (through --dump-logits) the logits. Then ftdist re-writes each fp32 model with its own
safetensors writer (--write-model) and Transformers must load it and compute the same logits. The
Phi-3 and Qwen3 models also go through the trainer's export (HfExporter): one step of `ftdist train`
from the directory at a learning rate too small to move an fp32 weight, exported in fp32, loaded by
Transformers: the same logits.

Targets, fp32: loss equal to 1e-5 relative, logits max abs diff <= 1e-4. bf16: two bf16
implementations round differently, so ftdist's bf16 error against the fp32 reference must be no
worse than 1.5x Transformers' own bf16 error against it (logits and loss).

usage: check_parity_transformers.py FTDIST_BINARY WORKDIR
"""
import json
import os
import random
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, MinistralConfig, MistralConfig, Phi3Config, Qwen2Config, Qwen3Config

SEQ = 40


def configs():
    common = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=211, max_position_embeddings=256, rms_norm_eps=1e-5,
                  initializer_range=0.25)  # large enough that logits are far from uniform
    yield "llama", LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False)
    yield "llama31", LlamaConfig(**common, tie_word_embeddings=False, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}, rope_theta=500000.0)
    yield "mistral", MistralConfig(**common, sliding_window=7, tie_word_embeddings=False)
    yield "qwen2", Qwen2Config(**common, tie_word_embeddings=True, use_sliding_window=False)
    # Phi3Config's pad_token_id (32000) is beyond the tiny vocabulary.
    yield "phi3", Phi3Config(**common, tie_word_embeddings=False, sliding_window=None, pad_token_id=None,
                             eos_token_id=None)
    yield "phi3-partial", Phi3Config(**common, tie_word_embeddings=True, sliding_window=9, pad_token_id=None, eos_token_id=None,
                                     partial_rotary_factor=0.5, rope_theta=500.0)
    yield "qwen3", Qwen3Config(**common, head_dim=24, tie_word_embeddings=True)
    yield "qwen3-untied", Qwen3Config(**common, head_dim=24, tie_word_embeddings=False, attention_bias=True,
                                      use_sliding_window=True, sliding_window=7, max_window_layers=1)
    # The window on the layers "layer_types" names, in any pattern: Qwen3's, and a Mistral config with
    # the key, which Transformers reads as Ministral (written below as model_type "mistral").
    yield "qwen3-layer-types", Qwen3Config(**common, head_dim=24, tie_word_embeddings=False, use_sliding_window=True, sliding_window=7,
                                           layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    yield "mistral-layer-types", MinistralConfig(**common, head_dim=16, sliding_window=7, tie_word_embeddings=False,
                                                 layer_types=["full_attention", "sliding_attention", "full_attention"])
    # Ministral itself (model_type "ministral"): without layer_types every layer takes the window.
    yield "ministral", MinistralConfig(**common, head_dim=16, sliding_window=9, tie_word_embeddings=False)
    # RoPE scaling: linear; dynamic NTK with every sequence longer than max_position_embeddings (each
    # sequence then has the base its own length gives: all are SEQ long, so Transformers' cached growth
    # agrees); YaRN (its ramp and attention factor) as Qwen3's long-context setting.
    yield "llama-linear", LlamaConfig(**common, tie_word_embeddings=False, rope_scaling={"rope_type": "linear", "factor": 4.0})
    yield "llama-dynamic", LlamaConfig(**{**common, "max_position_embeddings": 16}, tie_word_embeddings=False,
                                       rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    yield "qwen3-yarn", Qwen3Config(**{**common, "max_position_embeddings": 128}, head_dim=24, tie_word_embeddings=False, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32})
    # LongRoPE as Phi-3-mini-128k has it (pre-training context at the top level, factor and attention
    # factor from max_position_embeddings), with a context of 24 tokens: the sequences (5 to 40
    # tokens) take the short factors up to it and the long ones beyond; partial rotary, 4 pairs.
    yield "phi3-longrope", Phi3Config(**common, tie_word_embeddings=False, sliding_window=None, pad_token_id=None,
                                      eos_token_id=None, partial_rotary_factor=0.5, original_max_position_embeddings=24,
                                      rope_scaling={"type": "longrope", "short_factor": [1.0, 1.3, 2.1, 2.9],
                                                    "long_factor": [1.5, 4.0, 9.0, 17.0]})
    # LongRoPE on Llama: a top-level original_max_position_embeddings (20) wins over the scaling's own
    # (30), as Transformers' standardize_rope_params has it; the factor and its attention factor given.
    yield "llama-longrope", LlamaConfig(**common, tie_word_embeddings=False, original_max_position_embeddings=20, rope_scaling={
        "rope_type": "longrope", "original_max_position_embeddings": 30, "factor": 6.0,
        "short_factor": [1.0, 1.1, 1.4, 2.0, 2.5, 3.0, 3.5, 4.0], "long_factor": [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0]})


def write_data(path, vocab, rng, fixed_length=False):
    with open(path, "w") as f:
        for i in range(6):
            n = SEQ if fixed_length else rng.randint(5, SEQ)
            ids = [rng.randrange(vocab) for _ in range(n)]
            line = {"input_ids": ids}
            if i % 2 == 1:  # some positions ignored
                line["labels"] = [t if rng.random() > 0.3 else -100 for t in ids]
            f.write(json.dumps(line) + "\n")


def reference(model, data_path):
    total, count, logits_all = 0.0, 0, []
    with torch.no_grad():
        for line in open(data_path):
            ex = json.loads(line)
            ids = torch.tensor([ex["input_ids"]])
            labels = torch.tensor([ex.get("labels", ex["input_ids"])])
            logits = model(input_ids=ids).logits
            logits_all.append(logits[0].float())
            shift_logits = logits[0, :-1].float()
            shift_labels = labels[0, 1:]
            total += torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100,
                                                       reduction="sum").item()
            count += int((shift_labels != -100).sum())
    return total / count, count, logits_all


def run_ftdist(binary, model_dir, data, dump, extra=()):
    out = subprocess.run([binary, "eval", "--model", model_dir, "--data", data, "--json", "--device", "cpu",
                          "--dump-logits", dump, *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ftdist eval failed ({out.returncode}): {out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    dumped = load_file(dump)
    return result, [dumped[f"logits.{i}"] for i in range(len(dumped))]


def trainer_export(binary, model_dir, data, work, tag):
    """One `ftdist train` step from model_dir (lr 1e-30: no fp32 weight moves) with output.export: the
    exporter's directory."""
    out, cfg = os.path.join(work, tag + "-train"), os.path.join(work, tag + ".toml")
    with open(cfg, "w") as f:
        f.write(f'[model]\npath = "{model_dir}"\n[data]\ntrain = "{data}"\nseq_len = {SEQ}\n'
                '[train]\nsteps = 1\nmicro_batch = 1\nlr = 1e-30\nweight_decay = 0.0\nschedule = "constant"\n'
                f'[parallel]\ndevice = "cpu"\nprecision = "fp32"\n[output]\ndir = "{out}"\nexport = true\n'
                'export_dtype = "fp32"\n')
    subprocess.run(["rm", "-rf", out])
    p = subprocess.run([binary, "train", "--config", cfg], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"ftdist train failed ({p.returncode}): {p.stderr[-3000:]}")
    return os.path.join(out, "hf")


def reloaded_diff(model_dir, data, want_logits):
    again = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    _, _, again_logits = reference(again, data)
    return max(float((a - b).abs().max()) for a, b in zip(again_logits, want_logits))


def tied_head_checks(binary, work):
    """A tied config whose file also holds lm_head.weight: a copy of the embeddings reads as tied; a
    different head is refused (exit 2, naming the config and both tensors), never silently dropped."""
    from safetensors.torch import save_file
    failures = 0
    qwen = os.path.join(work, "qwen2-fp32")
    data = os.path.join(work, "qwen2.jsonl")
    tensors = load_file(os.path.join(qwen, "model.safetensors"))
    for tag, head in (("a copy of", tensors["model.embed_tokens.weight"].clone()),
                      ("different from", tensors["model.embed_tokens.weight"] * 2)):
        d = os.path.join(work, "tied-head-" + tag.split()[0])
        subprocess.run(["rm", "-rf", d])
        subprocess.run(["cp", "-r", qwen, d], check=True)
        save_file({**tensors, "lm_head.weight": head.contiguous()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        out = subprocess.run([binary, "eval", "--model", d, "--data", data, "--json", "--device", "cpu"], capture_output=True, text=True)
        if tag == "a copy of":
            ok = out.returncode == 0
        else:
            ok = (out.returncode == 2 and "tie_word_embeddings = true" in out.stderr and "lm_head.weight" in out.stderr
                  and "model.embed_tokens.weight" in out.stderr)
        print(f"tied config, lm_head.weight {tag} the embeddings: exit {out.returncode} {'ok' if ok else 'FAIL'} "
              f"{out.stderr.strip()[-200:]}")
        failures += not ok
    return failures


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = random.Random(1234)
    torch.manual_seed(0)
    failures, rows = 0, []
    for name, cfg in configs():
        data = os.path.join(work, f"{name}.jsonl")
        write_data(data, cfg.vocab_size, rng, fixed_length="dynamic" in name)
        base = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
        for dtype in (torch.float32, torch.bfloat16):
            tag = f"{name}-{'fp32' if dtype == torch.float32 else 'bf16'}"
            model_dir = os.path.join(work, tag)
            model = base.to(dtype)
            model.save_pretrained(model_dir)
            if name == "mistral-layer-types":  # as a Mistral config with layer_types has it
                with open(os.path.join(model_dir, "config.json")) as f:
                    saved = json.load(f)
                saved.update(model_type="mistral", architectures=["MistralForCausalLM"])
                with open(os.path.join(model_dir, "config.json"), "w") as f:
                    json.dump(saved, f)
            want_loss, want_count, want_logits = reference(model, data)
            # bf16: the same (eager) attention arithmetic as the reference, so rounding is comparable
            extra = ["--attention", "eager"] if dtype == torch.bfloat16 else []
            got, got_logits = run_ftdist(binary, model_dir, data, os.path.join(work, tag + ".logits.safetensors"), extra)
            rel = abs(got["loss"] - want_loss) / abs(want_loss)
            diff = max(float((a - b).abs().max()) for a, b in zip(got_logits, want_logits))
            scale = max(float(b.abs().max()) for b in want_logits)
            if dtype == torch.float32:
                ok = rel <= 1e-5 and diff <= 1e-4 and got["tokens"] == want_count
                ref_loss, ref_logits = want_loss, want_logits
            else:
                hf_err = max(float((a - b).abs().max()) for a, b in zip(want_logits, ref_logits))
                ft_err = max(float((a - b).abs().max()) for a, b in zip(got_logits, ref_logits))
                hf_loss_err, ft_loss_err = abs(want_loss - ref_loss), abs(got["loss"] - ref_loss)
                print(f"{tag}: error vs fp32 reference, logits: Transformers {hf_err:.3f}, ftdist {ft_err:.3f}; "
                      f"loss: Transformers {hf_loss_err:.2e}, ftdist {ft_loss_err:.2e}")
                ok = (ft_err <= 1.5 * hf_err + 1e-3 and ft_loss_err <= 1.5 * hf_loss_err + 1e-3 * ref_loss
                      and got["tokens"] == want_count)
            failures += not ok
            rows.append((tag + f" (max |logit| {scale:.1f})", want_loss, got["loss"], rel, diff, ok))
            if dtype == torch.float32:
                # Writer check: ftdist writes the weights, Transformers loads them back.
                rewritten = model_dir + "-rewritten"
                run_ftdist(binary, model_dir, data, os.path.join(work, tag + ".w.safetensors"),
                           ["--write-model", rewritten])
                wdiff = reloaded_diff(rewritten, data, want_logits)
                wok = wdiff == 0.0
                failures += not wok
                rows.append((tag + " (ftdist-written, loaded by Transformers)", want_loss, want_loss, 0.0, wdiff, wok))
                if name.startswith(("phi3", "qwen3")):
                    ediff = reloaded_diff(trainer_export(binary, model_dir, data, work, tag), data, want_logits)
                    eok = ediff <= 1e-6
                    failures += not eok
                    rows.append((tag + " (trainer export, loaded by Transformers)", want_loss, want_loss, 0.0, ediff, eok))
            base = base.float()
    failures += tied_head_checks(binary, work)
    print(f"{'model':52s} {'transformers':>13s} {'ftdist':>13s} {'loss rel':>10s} {'logits max':>11s}")
    for tag, a, b, rel, diff, ok in rows:
        print(f"{tag:52s} {a:13.7f} {b:13.7f} {rel:10.2e} {diff:11.2e}  {'ok' if ok else 'FAIL'}")
    print(f"{len(rows) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
