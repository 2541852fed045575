#!/usr/bin/env bash
# bench/gpu_fetch_debs.sh — run HERE (a Debian 12 machine with package access) before the first
# device call: downloads into .debs/ (ignored by git, ~9 MB) the Debian packages that the device
# image lacks — OpenMPI and its libraries, the header-only dependencies, SentencePiece, GoogleTest,
# pkg-config. The device call then names `.debs` in `carry`, and bench/gpu_validate.sh unpacks them
# (bench/gpu_env.sh). The device image is Ubuntu 24.04 (glibc 2.39): Debian 12's binaries run there.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.debs/' "$exclude" 2>/dev/null || echo '/.debs/' >>"$exclude"
mkdir -p .debs
cd .debs
apt-get download openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libevent-core-2.1-7 \
  libevent-pthreads-2.1-7 libhwloc15 libucx0 libfabric1 libibverbs1 librdmacm1 libpsm2-2 libpsm-infinipath1 \
  libnl-3-200 libnl-route-3-200 libnuma1 libmunge2 libudev1 libcxxopts-dev nlohmann-json3-dev libtomlplusplus-dev \
  libtomlplusplus3 libsentencepiece-dev libsentencepiece0 libgtest-dev pkgconf pkgconf-bin libpkgconf3
du -sh .
