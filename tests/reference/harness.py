"""What the reference test scripts share: running the unmask binary, and the command line and exit status of a
script that checks a list of cases (`--unmask PATH`; prints 'N passed, M failed'; exit 1 on any failure)."""
import argparse
import subprocess
import sys
import tempfile

import torch


def run(cmd):
    """Runs a command; raises with its stderr when it fails; returns its stdout."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def main(check_all):
    """check_all(unmask, tmp) -> list of booleans, one per case."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--unmask", required=True, help="path to the unmask binary")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = check_all(args.unmask, tmp)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)
