#!/usr/bin/env bash
# Installs the Debian packages unmask needs. Idempotent: safe to re-run; uses sudo when not root.
#
#   bash scripts/setup.sh          # what building and running `unmask` needs (compiler, CMake, oneDNN, ...)
#   bash scripts/setup.sh --test   # also what the tests, fuzzers and benchmarks need (GoogleTest, PyTorch, clang,
#                                  # Open MPI, Node with the npm packages of the GGUF parser test, the openai client
#                                  # tests and the page test, Chromium for the page test)
#   bash scripts/setup.sh --corpus # also the corpus the default models are trained on (scripts/train-default-models.sh)
set -euo pipefail
test=0 corpus=0
for arg in "$@"; do
  case "$arg" in
    --test) test=1 ;;
    --corpus) corpus=1 ;;
    *) echo "setup: unknown argument '$arg' (expected --test or --corpus)" >&2; exit 1 ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev libcli11-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev
)
if [ $test -eq 1 ]; then
  packages+=(
    googletest libgtest-dev libgmock-dev libbenchmark-dev
    libopenmpi-dev openmpi-bin
    python3-torch python3-numpy libopenblas0-openmp
    clang libclang-rt-14-dev libomp-dev  # the fuzz targets: clang++, libFuzzer + sanitizer runtimes, OpenMP for clang
    chromium  # the server's page, tested headless (tests/server/web)
  )
fi
if [ $corpus -eq 1 ]; then
  packages+=(bible-kjv bible-kjv-text)   # the King James Bible (public domain) and the program that prints it
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ $test -eq 1 ] && { command -v npm >/dev/null 2>&1 || missing+=(nodejs npm); }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all Debian packages present"
else
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ $test -eq 1 ]; then
  # The npm packages the tests use, each pinned by its folder's package-lock.json: the independent GGUF parser
  # (@huggingface/gguf), the official OpenAI client (openai), the browser driver for the page (playwright-core) and
  # llama.cpp's Node binding with its prebuilt CPU binary (node-llama-cpp; its optional GPU builds, ~600 MB, left out).
  root="$(cd "$(dirname "$0")/.." && pwd)"
  for dir in tests/io/gguf_js tests/server/openai tests/server/web tests/tools/llama_cpp; do
    if [ ! -d "$root/$dir/node_modules" ] || [ "$root/$dir/package-lock.json" -nt "$root/$dir/node_modules" ]; then
      (cd "$root/$dir" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
    fi
  done
fi
