"""A structured-text corpus for the generation benchmark: lines of arithmetic progressions ("339563, 339566, 339569,
..."), each with a random start below 10^6, a random step from a fixed set and a random length of 8 to 23 numbers.
Within a line the text is determined by its first two numbers; where a line ends, and how the next one starts, is
not. A model trained on it is confident the way a large model is on formulaic text (code, arithmetic, lists), which
is the case the threshold rule of Fast-dLLM exploits; the random line breaks keep it from being trivially certain.

  /usr/bin/python3 bench/counting_corpus.py --out count.txt       # 2.0 MB, seed 7
"""
import argparse
import random


def corpus(size, seed):
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        start, step = rng.randrange(0, 1_000_000), rng.choice([1, 2, 3, 4, 5, 7, 10, 25, 100])
        line = ", ".join(str(start + i * step) for i in range(rng.randrange(8, 24))) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=2_000_000, help="bytes, at least")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with open(args.out, "w") as f:
        f.write(corpus(args.size, args.seed))


if __name__ == "__main__":
    main()
