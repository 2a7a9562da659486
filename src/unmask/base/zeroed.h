// An allocator for large zero-initialised buffers that cost nothing until touched: calloc takes fresh (already zero)
// pages from the OS for large sizes, and the vector's own value-initialisation, a memset of every page, is skipped
// (elements constructed without arguments are left as calloc gave them: zero). A KV cache sized for the whole context
// then costs only the positions a request reaches.
#pragma once

#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace unmask {

template <typename T>
struct ZeroedAllocator {
  using value_type = T;
  ZeroedAllocator() = default;
  template <typename U>
  ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    void* p = std::calloc(n, sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <typename U>
  void construct(U*) noexcept {}  // zero already
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const ZeroedAllocator<U>&) const noexcept { return true; }
};

// A vector of n zeros that are paid for page by page as they are first written.
template <typename T>
using ZeroedVector = std::vector<T, ZeroedAllocator<T>>;

}  // namespace unmask
