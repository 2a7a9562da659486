// Data-parallel communication: a process group that sums gradients and losses across processes. Under mpirun
// (Open MPI sets OMPI_COMM_WORLD_SIZE) it is MPI_COMM_WORLD; otherwise a group of one where every call is a no-op.
#pragma once

#include <cstddef>

namespace unmask {

class Comm {
 public:
  // Initialises MPI when launched by mpirun and the build has MPI; a single process otherwise.
  static Comm& world();
  int rank() const { return rank_; }
  int size() const { return size_; }
  // In place, the element-wise sum over all processes (MPI_Allreduce, same result on every rank).
  void sum(float* x, size_t n) const;
  void sum(double* x, size_t n) const;
  ~Comm();

 private:
  Comm();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

}  // namespace unmask
