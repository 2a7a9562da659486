#!/usr/bin/env bash
# Trains the two default models shipped in models/: a masked-diffusion model (MDLM objective, LLaDA architecture,
# bidirectional) and its autoregressive twin (next-token objective, LLaMA architecture, causal) on the same backbone
# (5.9M parameters; the diffusion model reads its logits shifted by one position, as Dream does, which lets it learn
# from a clean neighbour before it learns to attend), the same byte-level BPE tokenizer trained by unmask, the same data and the same compute
# (3,000 steps of 8 x 256 tokens each), on the King James Bible (public domain; Debian's bible-kjv-text).
#
#   bash scripts/train-default-models.sh            # builds unmask if needed, trains both, writes models/*.gguf
#   bash scripts/train-default-models.sh --check    # trains both in build/default-models-check and compares
#                                                   # their SHA-256 with models/SHA256SUMS (writes nothing in models/)
#
# Re-running it gives the same bytes: the trainer is deterministic (same seed, same output, whatever the thread
# count), so each file's SHA-256 matches models/SHA256SUMS on a machine with the same instruction set (AVX-512 here;
# oneDNN picks its kernels by ISA). The exact commands are recorded in each file's metadata (unmask.recipe).
# Takes about 30 minutes on two cores (both models train at once, one thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "train-default-models: unknown argument '$1' (expected --check)" >&2; exit 1 ;;
esac
bash scripts/setup.sh --corpus
unmask=${UNMASK:-build/release/unmask}
if [ -z "${UNMASK:-}" ]; then
  cmake --preset release >/dev/null && cmake --build --preset release --target unmask
fi
unmask=$(realpath "$unmask")
top=$(pwd)
work=build/default-models
[ $check -eq 1 ] && work=build/default-models-check
rm -rf "$work" && mkdir -p "$work" models
cd "$work"
u() { "$unmask" "$@"; }

# The recipe: every command below that makes the models, recorded verbatim in their metadata.
recipe=$(cat <<'EOF'
bible -l1000 gen1:1-rev22:21 </dev/null | sed -E 's/^ +[0-9]+ //' > kjv.txt
unmask tokenizer train --input kjv.txt --vocab-size 2048 --out tokenizer.gguf
unmask data prepare --input kjv.txt --tokenizer tokenizer.gguf --out data
unmask train --objective OBJECTIVE [--arch dream for mdlm] --data data --d-model 256 --layers 6 --heads 4 --ffn 704 --seq-len 256 --batch 8 --steps 3000 --lr 1.5e-3 --min-lr 1.5e-4 --warmup 150 --eval-every 250 --eval-batches 20 --checkpoint-every 500 --bf16 --seed 1337 -t 1 --out OBJECTIVE
unmask export OBJECTIVE kjv-OBJECTIVE.gguf --type bf16 --set unmask.recipe=... --set general.name=kjv-OBJECTIVE
EOF
)
# 1. The corpus: the whole King James Bible, one verse per line (verse numbers dropped), chapter headings kept.
bible -l1000 gen1:1-rev22:21 </dev/null | sed -E 's/^ +[0-9]+ //' > kjv.txt
echo "corpus: kjv.txt, $(wc -c < kjv.txt) bytes, sha256 $(sha256sum kjv.txt | cut -c1-16)"
# 2. The tokenizer and the token shards (the last 10% of the text, Revelation's end, held out for validation).
u tokenizer train --input kjv.txt --vocab-size 2048 --out tokenizer.gguf
u data prepare --input kjv.txt --tokenizer tokenizer.gguf --out data
# 3. Both models at once, one thread each (the bytes do not depend on the thread count).
train() {
  u train --objective "$@" --data data --d-model 256 --layers 6 --heads 4 --ffn 704 --seq-len 256 --batch 8 \
    --steps 3000 --lr 1.5e-3 --min-lr 1.5e-4 --warmup 150 --eval-every 250 --eval-batches 20 \
    --checkpoint-every 500 --bf16 --seed 1337 -t 1 --out "$1" > "$1.log" 2>&1
}
train ar & ar_pid=$!
train mdlm --arch dream & mdlm_pid=$!
wait $ar_pid || { echo "train ar failed: see $work/ar.log"; exit 1; }
wait $mdlm_pid || { echo "train mdlm failed: see $work/mdlm.log"; exit 1; }
grep -h "val" ar.log mdlm.log | tail -n 2
# 4. The models alone, in bf16 (11.8 MB each), with the recipe in their metadata.
for o in ar mdlm; do
  u export "$o" "kjv-$o.gguf" --type bf16 --set "unmask.recipe=$recipe" --set "general.name=kjv-$o"
done
if [ $check -eq 1 ]; then
  sha256sum -c "$top/models/SHA256SUMS" && echo "train-default-models: the rebuilt models are bit for bit the shipped ones"
  exit
fi
sha256sum kjv-ar.gguf kjv-mdlm.gguf > SHA256SUMS
cp kjv-ar.gguf kjv-mdlm.gguf SHA256SUMS "$top/models/"
cat SHA256SUMS
