// CPU kernels of the `csr` propagation backend (gnnrec_jax/propagate.py) as XLA FFI custom
// calls, compiled on first use by gnnrec_jax/kernels/__init__.py for the CPU it runs on.
//
// A is the N x N matrix of a graph whose E edges are sorted by receiver: edge e is the nonzero
// A[receivers[e], senders[e]] with value weights[e, h] per head h. Node vectors are
// [N, H * dh] row-major, head h owning the columns [h * dh, (h + 1) * dh). The row pointers are
// rebuilt from `receivers` on each call (one O(E) pass, 1/d of the product's work), which also
// checks that the edges are sorted and the ids in range: a bad graph is an error, not wrong
// output.
//
//   gnnrec_spmm   y = A x: y[r] = sum over edges e of row r of w[we(e)] x[senders[e]], where
//                 we(e) = e, or weight_index[e] when that operand is not empty. weight_index
//                 must be the reverse edge of each edge (graph.edges["reverse"]; checked): this
//                 is then A^T x of a structurally symmetric graph, with no reordering.
//                 transpose = true: y = A^T x of any graph, through a counting sort of the
//                 edges by sender (one extra O(E) pass per call).
//   gnnrec_sddmm  out[e, h] = <a[receivers[e], h, :], b[senders[e], h, :]>
//
// Every product is a gather into rows owned by one thread (no atomics), summed in edge order, so
// results do not depend on the thread count. Work is split over XLA's own intra-op thread pool
// (no second pool competes for the cores) in row blocks of equal nonzero counts. Widths that
// are multiples of 16 (one head) keep the row's accumulator in vector registers and prefetch the
// rows needed 16 edges ahead; measured figures are in benchmarks/RESULTS.md
// (benchmarks/bench_propagation.py: a Gowalla layer, 1.6M edges at d = 64, is 2-3x faster
// than scipy's CSR product on one core).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Runs fn(0), ..., fn(n - 1) on the calling thread and up to `threads - 1` pool threads.
// Tasks that start after all work is claimed return without touching `fn`, so `fn` may live on
// the caller's stack; the shared counters outlive every task.
template <typename F>
void ParallelFor(ffi::ThreadPool& pool, int64_t n, int64_t threads, const F& fn) {
  if (threads <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto state = std::make_shared<State>();
  const F* f = &fn;
  auto work = [state, f, n]() {
    for (int64_t i; (i = state->next.fetch_add(1)) < n;) {
      (*f)(i);
      state->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t t = 1; t < std::min(threads, n); ++t) {
    auto task = work;  // Schedule takes its callable by value (an rvalue)
    pool.Schedule(std::move(task));
  }
  work();
  while (state->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
}

// Boundaries of `parts` row blocks with about equal nonzeros: rows [bounds[k], bounds[k + 1]).
void RowBlocks(const int64_t* indptr, int64_t n_rows, int64_t parts, int64_t* bounds) {
  const int64_t nnz = indptr[n_rows];
  bounds[0] = 0;
  for (int64_t k = 1; k < parts; ++k) {
    const int64_t target = nnz * k / parts;
    bounds[k] = std::lower_bound(indptr, indptr + n_rows + 1, target) - indptr;
    bounds[k] = std::max(bounds[k], bounds[k - 1]);
  }
  bounds[parts] = n_rows;
}

// Runs fn(lo, hi) over the rows [0, n) cut into blocks of about equal nonzeros (four per thread,
// so that a thread slowed by other load hands its share to the others).
template <typename F>
void ForRowBlocks(ffi::ThreadPool& pool, const int64_t* indptr, int64_t n, int64_t threads,
                  const F& fn) {
  const int64_t parts = threads == 1 ? 1 : 4 * threads;
  std::vector<int64_t> bounds(parts + 1);
  RowBlocks(indptr, n, parts, bounds.data());
  ParallelFor(pool, parts, threads, [&](int64_t k) { fn(bounds[k], bounds[k + 1]); });
}

int64_t Threads(ffi::ThreadPool& pool, int64_t work, int64_t max_threads) {
  // Below ~1M multiply-adds per thread, waking a second thread costs more than it saves.
  int64_t t = std::min<int64_t>(pool.num_threads(), max_threads > 0 ? max_threads : 1 << 30);
  t = std::min<int64_t>(t, std::max<int64_t>(1, work >> 20));
  return std::max<int64_t>(t, 1);
}

// CSR row pointers of `receivers` (sorted, each in [0, n)) into indptr[0..n].
ffi::Error BuildIndptr(const int32_t* receivers, const int32_t* senders, int64_t nnz, int64_t n,
                       std::vector<int64_t>& indptr) {
  indptr.assign(n + 1, 0);
  int64_t prev = 0;
  for (int64_t e = 0; e < nnz; ++e) {
    const int64_t r = receivers[e], s = senders[e];
    if (r < prev || r >= n || s < 0 || s >= n) {
      std::string why = r < prev ? "edges must be sorted by receiver (as gnnrec_jax.graph."
                                   "build_graph and pad_graph make them)"
                                 : "node id out of range [0, " + std::to_string(n) + ")";
      return ffi::Error::InvalidArgument("gnnrec native propagation: edge " +
                                         std::to_string(e) + ": " + why);
    }
    prev = r;
    indptr[r + 1]++;
  }
  for (int64_t r = 0; r < n; ++r) indptr[r + 1] += indptr[r];
  return ffi::Error::Success();
}

typedef float Vec16 __attribute__((vector_size(64)));  // 16 floats (2 x 256 bits without AVX-512)
constexpr int kPrefetch = 16;  // edges ahead

inline Vec16 Load(const float* p) {
  Vec16 v;
  __builtin_memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}

inline void PrefetchRow(const float* p, int64_t width) {
  for (int64_t b = 0; b < width; b += 16) __builtin_prefetch(p + b);
}

// out[r] = sum over e in [ptr[r], ptr[r + 1]) of w[we(e)] * xs[idx[e]] for rows [lo, hi), with
// we(e) = e, or widx[e] (kIndirect). One head, width W = 16 K.
template <int K, bool kIndirect>
void GatherRowsVec(const int64_t* ptr, const int32_t* idx, const int32_t* widx, const float* w,
                   const float* xs, float* out, int64_t lo, int64_t hi) {
  constexpr int64_t W = 16 * K;
  const int64_t end = ptr[hi];
  for (int64_t r = lo; r < hi; ++r) {
    Vec16 acc[K] = {};
    for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      if (e + kPrefetch < end) PrefetchRow(xs + int64_t(idx[e + kPrefetch]) * W, W);
      const float a = w[kIndirect ? widx[e] : e];
      const float* xr = xs + int64_t(idx[e]) * W;
      for (int k = 0; k < K; ++k) acc[k] += a * Load(xr + 16 * k);
    }
    __builtin_memcpy(out + r * W, acc, sizeof(acc));
  }
}

// The same for any width and head count.
void GatherRows(const int64_t* ptr, const int32_t* idx, const int32_t* widx, const float* w,
                const float* xs, float* out, int64_t lo, int64_t hi, int64_t heads,
                int64_t dh) {
  const int64_t width = heads * dh;
  for (int64_t r = lo; r < hi; ++r) {
    float* __restrict yr = out + r * width;
    std::memset(yr, 0, sizeof(float) * width);
    for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      const int64_t we = widx ? widx[e] : e;
      const float* __restrict xr = xs + int64_t(idx[e]) * width;
      for (int64_t h = 0; h < heads; ++h) {
        const float a = w[we * heads + h];
        for (int64_t c = h * dh; c < (h + 1) * dh; ++c) yr[c] += a * xr[c];
      }
    }
  }
}

template <bool kIndirect>
void Gather(const int64_t* ptr, const int32_t* idx, const int32_t* widx, const float* w,
            const float* xs, float* out, int64_t lo, int64_t hi, int64_t heads, int64_t dh) {
  if (heads == 1) {
    switch (dh) {
      case 16: return GatherRowsVec<1, kIndirect>(ptr, idx, widx, w, xs, out, lo, hi);
      case 32: return GatherRowsVec<2, kIndirect>(ptr, idx, widx, w, xs, out, lo, hi);
      case 64: return GatherRowsVec<4, kIndirect>(ptr, idx, widx, w, xs, out, lo, hi);
      case 128: return GatherRowsVec<8, kIndirect>(ptr, idx, widx, w, xs, out, lo, hi);
      default: break;
    }
  }
  GatherRows(ptr, idx, kIndirect ? widx : nullptr, w, xs, out, lo, hi, heads, dh);
}

ffi::Error SpmmImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> receivers,
                    ffi::Buffer<ffi::S32> senders, ffi::Buffer<ffi::F32> weights,
                    ffi::Buffer<ffi::S32> weight_index, ffi::Buffer<ffi::F32> x,
                    ffi::ResultBuffer<ffi::F32> y, bool transpose, int64_t max_threads) {
  auto xd = x.dimensions();
  if (xd.size() != 2) return ffi::Error::InvalidArgument("x must be [N, width]");
  const int64_t n = xd[0], width = xd[1], nnz = senders.element_count();
  auto wd = weights.dimensions();
  if (receivers.element_count() != nnz || wd.size() != 2 || wd[0] != nnz)
    return ffi::Error::InvalidArgument("receivers and senders must be [E], weights [E, H]");
  const int64_t heads = wd[1];
  if (heads < 1 || width % heads != 0)
    return ffi::Error::InvalidArgument("feature width is not a multiple of the head count");
  const int64_t dh = width / heads;
  const bool indirect = weight_index.element_count() > 0;
  if (indirect && (transpose || weight_index.element_count() != nnz))
    return ffi::Error::InvalidArgument("weight_index must be [E] or empty, and not transposed");
  std::vector<int64_t> ptr;
  const int32_t* snd = senders.typed_data();
  if (auto err = BuildIndptr(receivers.typed_data(), snd, nnz, n, ptr); err.failure()) return err;
  const int32_t* idx = snd;
  const int32_t* wi = nullptr;
  std::vector<int32_t> rows, order;
  if (indirect) {
    // Only ever the reverse-edge permutation. Every entry is range-checked; every 31st (and the
    // last) is checked to be the reverse, so that a graph whose edges were changed after
    // build_graph gives an error instead of a wrong transpose (a full check cost 4-5 ms per
    // Gowalla product, as much as the product: its loads are random).
    wi = weight_index.typed_data();
    const int32_t* rcv = receivers.typed_data();
    for (int64_t e = 0; e < nnz; ++e)
      if (wi[e] < 0 || wi[e] >= nnz)
        return ffi::Error::InvalidArgument("weight_index entry " + std::to_string(e) +
                                           " out of range");
    auto not_reverse = [&](int64_t e) {
      return rcv[wi[e]] != snd[e] || snd[wi[e]] != rcv[e];
    };
    auto stale = [](int64_t e) {
      return ffi::Error::InvalidArgument(
          "gnnrec native propagation: graph.edges[\"reverse\"][" + std::to_string(e) +
          "] is not the reverse of edge " + std::to_string(e) +
          " (edges changed after gnnrec_jax.graph.build_graph?)");
    };
    for (int64_t e = 0; e < nnz; e += 31)
      if (not_reverse(e)) return stale(e);
    if (nnz > 0 && not_reverse(nnz - 1)) return stale(nnz - 1);
  } else if (transpose) {
    // A^T in CSR form = A in CSC form: a stable counting sort of the edges by sender.
    std::vector<int64_t> cptr(n + 1, 0);
    for (int64_t e = 0; e < nnz; ++e) cptr[snd[e] + 1]++;
    for (int64_t c = 0; c < n; ++c) cptr[c + 1] += cptr[c];
    rows.resize(nnz);
    order.resize(nnz);
    std::vector<int64_t> next(cptr.begin(), cptr.end() - 1);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
        const int64_t k = next[snd[e]]++;
        rows[k] = int32_t(r);
        order[k] = int32_t(e);
      }
    ptr.swap(cptr);
    idx = rows.data();
    wi = order.data();
  }
  const int64_t* ip = ptr.data();
  const float* w = weights.typed_data();
  const float* xs = x.typed_data();
  float* out = y->typed_data();
  ForRowBlocks(pool, ip, n, Threads(pool, nnz * width, max_threads),
               [&](int64_t lo, int64_t hi) {
                 if (wi)
                   Gather<true>(ip, idx, wi, w, xs, out, lo, hi, heads, dh);
                 else
                   Gather<false>(ip, idx, wi, w, xs, out, lo, hi, heads, dh);
               });
  return ffi::Error::Success();
}

// out[e] = <a[r], b[idx[e]]> for the edges of rows [lo, hi); one head, width 16 K.
template <int K>
void SddmmRowsVec(const int64_t* ptr, const int32_t* idx, const float* as, const float* bs,
                  float* o, int64_t lo, int64_t hi) {
  constexpr int64_t W = 16 * K;
  const int64_t end = ptr[hi];
  for (int64_t r = lo; r < hi; ++r) {
    Vec16 ar[K];
    for (int k = 0; k < K; ++k) ar[k] = Load(as + r * W + 16 * k);
    for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      if (e + kPrefetch < end) PrefetchRow(bs + int64_t(idx[e + kPrefetch]) * W, W);
      const float* br = bs + int64_t(idx[e]) * W;
      Vec16 acc = ar[0] * Load(br);
      for (int k = 1; k < K; ++k) acc += ar[k] * Load(br + 16 * k);
      float sum = 0.f;
      for (int l = 0; l < 16; ++l) sum += acc[l];
      o[e] = sum;
    }
  }
}

void SddmmRows(const int64_t* ptr, const int32_t* idx, const float* as, const float* bs,
               float* o, int64_t lo, int64_t hi, int64_t heads, int64_t dh) {
  const int64_t width = heads * dh;
  for (int64_t r = lo; r < hi; ++r) {
    const float* __restrict ar = as + r * width;
    for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      const float* __restrict br = bs + int64_t(idx[e]) * width;
      for (int64_t h = 0; h < heads; ++h) {
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = h * dh; c < (h + 1) * dh; ++c) acc += ar[c] * br[c];
        o[e * heads + h] = acc;
      }
    }
  }
}

ffi::Error SddmmImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> receivers,
                     ffi::Buffer<ffi::S32> senders, ffi::Buffer<ffi::F32> a,
                     ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> out,
                     int64_t max_threads) {
  auto ad = a.dimensions();
  auto od = out->dimensions();
  if (ad.size() != 2 || b.dimensions().size() != 2 || b.dimensions()[0] != ad[0] ||
      b.dimensions()[1] != ad[1] || od.size() != 2)
    return ffi::Error::InvalidArgument("a and b must be [N, width], out [E, H]");
  const int64_t n = ad[0], width = ad[1], nnz = senders.element_count(), heads = od[1];
  if (receivers.element_count() != nnz || od[0] != nnz || heads < 1 || width % heads)
    return ffi::Error::InvalidArgument("inconsistent shapes for the sampled product");
  const int64_t dh = width / heads;
  std::vector<int64_t> ptr;
  const int32_t* snd = senders.typed_data();
  if (auto err = BuildIndptr(receivers.typed_data(), snd, nnz, n, ptr); err.failure()) return err;
  const int64_t* ip = ptr.data();
  const float* as = a.typed_data();
  const float* bs = b.typed_data();
  float* o = out->typed_data();
  ForRowBlocks(pool, ip, n, Threads(pool, nnz * width, max_threads), [&](int64_t lo,
                                                                          int64_t hi) {
    if (heads == 1 && dh == 16) return SddmmRowsVec<1>(ip, snd, as, bs, o, lo, hi);
    if (heads == 1 && dh == 32) return SddmmRowsVec<2>(ip, snd, as, bs, o, lo, hi);
    if (heads == 1 && dh == 64) return SddmmRowsVec<4>(ip, snd, as, bs, o, lo, hi);
    if (heads == 1 && dh == 128) return SddmmRowsVec<8>(ip, snd, as, bs, o, lo, hi);
    SddmmRows(ip, snd, as, bs, o, lo, hi, heads, dh);
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GnnrecSpmm, SpmmImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()   // receivers [E], sorted
                                  .Arg<ffi::Buffer<ffi::S32>>()   // senders [E]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // weights [E, H]
                                  .Arg<ffi::Buffer<ffi::S32>>()   // weight_index [E] or [0]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [N, width]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // y [N, width]
                                  .Attr<bool>("transpose")
                                  .Attr<int64_t>("max_threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(GnnrecSddmm, SddmmImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()   // receivers [E], sorted
                                  .Arg<ffi::Buffer<ffi::S32>>()   // senders [E]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // a [N, width] (receivers)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // b [N, width] (senders)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // out [E, H]
                                  .Attr<int64_t>("max_threads"));
