#ifndef CMACHINEINFO_H
#define CMACHINEINFO_H
#include <stdint.h>

/// CPU feature bits reported by dst_cpu_features (each usable: the CPU has it and the
/// operating system saves its registers).
enum {
    DST_CPU_SSE3 = 1 << 0,
    DST_CPU_AVX = 1 << 1,
    DST_CPU_FMA = 1 << 2,
    DST_CPU_AVX2 = 1 << 3,
    DST_CPU_AVX512F = 1 << 4,
    DST_CPU_AVX512BW = 1 << 5,
    DST_CPU_AVX512DQ = 1 << 6,
    DST_CPU_AVX512VL = 1 << 7,
    DST_CPU_AVX512BF16 = 1 << 8,
};

/// The usable features as DST_CPU_* bits (0 on other architectures).
uint32_t dst_cpu_features(void);

/// The CPU's brand string (CPUID 0x80000002–4) into `out` (at least 49 bytes), and its
/// family and model numbers; an empty string and zeros where CPUID is unavailable.
void dst_cpu_identity(char *out, int32_t *family, int32_t *model);

/// The median time of a cache line's round trip between the calling thread and a thread
/// it starts (each waits for the other's store), in nanoseconds, over `rounds` round
/// trips in 9 batches; -1 when no thread could be started. Between cores that share a
/// cache this is about 50–150 ns; on a virtual machine whose two virtual CPUs the host
/// has put on distant cores it is several hundred, and work handed between threads
/// slows down with it. Call it with the library's worker pool idle.
double dst_thread_round_trip_ns(int32_t rounds);

/// Atomics and a spin hint for the library's worker pool (DSCore's Parallel): sequentially
/// consistent operations on a shared 64-bit counter.
static inline int64_t dst_atomic_load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void dst_atomic_store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/// Adds `v` and returns the value before the addition.
static inline int64_t dst_atomic_fetch_add(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
/// Replaces `*p` with `desired` if it holds `expected`; true when it did.
static inline int dst_atomic_compare_exchange(int64_t *p, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
/// A per-thread nesting count: how many parallel-loop bodies the calling thread is inside.
int32_t dst_parallel_depth(void);
void dst_set_parallel_depth(int32_t depth);
/// Tells the CPU this is a spin-wait loop (x86 `pause`; nothing elsewhere).
static inline void dst_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
