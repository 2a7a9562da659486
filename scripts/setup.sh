#!/usr/bin/env bash
# Installs every Debian package unmask's build, tests and benchmarks need. Idempotent: safe to re-run.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev libcli11-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  python3-torch python3-numpy libopenblas0-openmp
  clang libclang-rt-14-dev libomp-dev  # the fuzz targets: clang++, libFuzzer + sanitizer runtimes, OpenMP for clang
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all Debian packages present"
else
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The independent GGUF parser the io tests compare against (npm's @huggingface/gguf, pinned by package-lock.json).
cd "$(dirname "$0")/../tests/io/gguf_js"
if [ ! -d node_modules/@huggingface/gguf ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
