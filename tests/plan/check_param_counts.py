#!/usr/bin/env python3
"""Oracle test: `ftdist plan --model-config F --json` must report the parameter count that
Hugging Face Transformers gets for the same config.json (model built on the meta device, tied
weights counted once, i.e. the sum of the checkpoint's tensor sizes).

usage: check_param_counts.py FTDIST_BINARY CONFIG_DIR
"""
import glob
import json
import os
import subprocess
import sys

import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM


def transformers_count(path):
    with open(path) as f:
        cfg = json.load(f)
    config = CONFIG_MAPPING[cfg["model_type"]](**{k: v for k, v in cfg.items() if k != "model_type"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def ftdist_count(binary, path):
    out = subprocess.run([binary, "plan", "--model-config", path, "--gpu", "h200", "--gpus", "8",
                          "--examples", "1000", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["model"]["params_total"]


def main():
    binary, config_dir = sys.argv[1], sys.argv[2]
    configs = sorted(glob.glob(os.path.join(config_dir, "*.json")))
    assert configs, f"no configs in {config_dir}"
    failed = 0
    for path in configs:
        want, got = transformers_count(path), ftdist_count(binary, path)
        status = "ok" if want == got else "MISMATCH"
        failed += want != got
        print(f"{os.path.basename(path):24s} transformers {want:>15,d}  ftdist {got:>15,d}  {status}")
    print(f"{len(configs) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
