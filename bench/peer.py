"""The PyTorch peer of the benchmarks, made fair: the environment presets OPENBLAS_CORETYPE=Haswell, which halves
OpenBLAS on this machine, and Debian's default OpenBLAS is the pthreads build; a peer process runs with the preset
removed, the OpenMP build first on the library path, and the thread count the benchmark compares at."""
import os


def torch_env(threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env["LD_LIBRARY_PATH"] = "/usr/lib/x86_64-linux-gnu/openblas-openmp:" + env.get("LD_LIBRARY_PATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    return env
