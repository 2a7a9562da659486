#include "unmask/train/comm.h"

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "unmask/base/error.h"

#ifdef UNMASK_MPI
#include <mpi.h>
#endif

namespace unmask {

Comm& Comm::world() {
  static Comm c;
  return c;
}

Comm::Comm() {
#ifdef UNMASK_MPI
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) {
    MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    mpi_ = true;
  }
#endif
}

Comm::~Comm() {
#ifdef UNMASK_MPI
  if (mpi_) MPI_Finalize();
#endif
}

#ifdef UNMASK_MPI
namespace {
template <typename T>
void allreduce_sum(T* x, size_t n, MPI_Datatype type) {
  for (size_t at = 0; at < n; at += INT_MAX / 2)
    MPI_Allreduce(MPI_IN_PLACE, x + at, int(std::min<size_t>(n - at, INT_MAX / 2)), type, MPI_SUM, MPI_COMM_WORLD);
}
}  // namespace
#endif

void Comm::sum(float* x, size_t n) const {
#ifdef UNMASK_MPI
  if (mpi_) allreduce_sum(x, n, MPI_FLOAT);
#endif
}

void Comm::sum(double* x, size_t n) const {
#ifdef UNMASK_MPI
  if (mpi_) allreduce_sum(x, n, MPI_DOUBLE);
#endif
}

}  // namespace unmask
