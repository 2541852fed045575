#!/usr/bin/env bash
# scripts/setup.sh — install everything ftdist needs, then configure and build it (idempotent; quick
# when everything is already there). Used by both README commands and by .ci/run.
#
#   bash scripts/setup.sh                 # OS packages, .venv with the pinned PyTorch, build/ (Release+debug info)
#   bash scripts/setup.sh --tests         # and what only the tests use: Chromium (renders the plan report)
#   FTDIST_BUILD_DIR=build-asan FTDIST_CMAKE_ARGS="-DFTDIST_SANITIZE=ON" bash scripts/setup.sh
#   FTDIST_PYTHON=/usr/bin/python3 bash scripts/setup.sh   # use a Python whose PyTorch is preinstalled
#
# What it installs:
#   Debian packages  compilers, cmake, ninja, ccache, OpenMPI, cxxopts, nlohmann-json, toml++,
#                    SentencePiece, GoogleTest; with --tests also chromium (headless, for
#                    tests/plan/check_plan_report.py)
#   .venv (PyPI)     torch==${FTDIST_TORCH_VERSION} (its LibTorch is what ftdist links; on Linux it is
#                    CUDA-enabled), safetensors, transformers, numpy, tensorboard (test oracles). The venv sees the
#                    system's site-packages, so a PyTorch preinstalled on a GPU machine is used as is.
set -euo pipefail
cd "$(dirname "$0")/.."

FTDIST_TORCH_VERSION="${FTDIST_TORCH_VERSION:-2.11.0}"
BUILD_DIR="${FTDIST_BUILD_DIR:-build}"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# ---- OS packages ------------------------------------------------------------------------------------
APT_PACKAGES=(build-essential cmake ninja-build pkg-config ccache git
              libopenmpi-dev openmpi-bin libcxxopts-dev nlohmann-json3-dev libtomlplusplus-dev
              libsentencepiece-dev libgtest-dev)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then APT_PACKAGES+=(python3 python3-venv); fi
for arg in "$@"; do
  case "$arg" in
    --tests) APT_PACKAGES+=(chromium) ;;
    *) die "unknown argument '$arg' (expected --tests)" ;;
  esac
done
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"; SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

# ---- Python environment with LibTorch ------------------------------------------------------------------
if [ -n "${FTDIST_PYTHON:-}" ]; then
  PY="$FTDIST_PYTHON"
  "$PY" -c 'import torch' 2>/dev/null || die "FTDIST_PYTHON=$PY cannot import torch"
else
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv --system-site-packages .venv
  fi
  PY="$PWD/.venv/bin/python"
  if ! "$PY" -c 'import torch' 2>/dev/null; then
    say "installing torch==$FTDIST_TORCH_VERSION into .venv (LibTorch for the build; a large download)"
    "$PY" -m pip install -q --disable-pip-version-check "torch==$FTDIST_TORCH_VERSION"
  fi
  if ! "$PY" -c 'import safetensors, transformers, numpy, tensorboard' 2>/dev/null; then
    say "installing safetensors, transformers, numpy, tensorboard into .venv (test oracles)"
    "$PY" -m pip install -q --disable-pip-version-check safetensors transformers numpy tensorboard
  fi
fi
read -r TORCH_VER TORCH_CUDA < <("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none")')
say "PyTorch $TORCH_VER (CUDA $TORCH_CUDA) from $PY"
case "$TORCH_VER" in "$FTDIST_TORCH_VERSION"*) ;; *) say "note: ftdist pins torch $FTDIST_TORCH_VERSION; building against $TORCH_VER";; esac

# One CUDA runtime per process: the toolkit's major version must be LibTorch's.
if [ "$TORCH_CUDA" != none ]; then
  command -v nvcc >/dev/null || PATH="/usr/local/cuda/bin:$PATH"
  if command -v nvcc >/dev/null; then
    NVCC_VER=$(nvcc --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9]*\).*/\1/p')
    [ "${NVCC_VER%%.*}" = "${TORCH_CUDA%%.*}" ] || die "CUDA toolkit $NVCC_VER (nvcc) does not match the CUDA $TORCH_CUDA that PyTorch $TORCH_VER was built with; install the CUDA ${TORCH_CUDA%%.*} toolkit or a PyTorch built for CUDA ${NVCC_VER%%.*} (FTDIST_TORCH_VERSION=...)"
    say "CUDA toolkit $NVCC_VER matches"
  else
    say "no CUDA toolkit (nvcc) found: building without GPU code (FTDIST_CUDA=OFF)"
    FTDIST_CMAKE_ARGS="${FTDIST_CMAKE_ARGS:-} -DFTDIST_CUDA=OFF"
  fi
fi

# ---- configure and build ------------------------------------------------------------------------------
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DFTDIST_PYTHON="$PY" ${FTDIST_CMAKE_ARGS:-} >"$BUILD_DIR.configure.log" 2>&1 \
  || { cat "$BUILD_DIR.configure.log" >&2; die "cmake configure failed (log above, also in $BUILD_DIR.configure.log)"; }
grep -E '^-- ftdist:' "$BUILD_DIR.configure.log" | sed 's/^-- /[setup] /'
say "building in $BUILD_DIR/ ($(nproc) jobs)"
cmake --build "$BUILD_DIR" -j "$(nproc)"
say "done: $BUILD_DIR/ftdist"
