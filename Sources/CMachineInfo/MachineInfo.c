#include "CMachineInfo.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

uint32_t dst_cpu_features(void) {
    __builtin_cpu_init();
    uint32_t bits = 0;
    if (__builtin_cpu_supports("sse3")) bits |= DST_CPU_SSE3;
    if (__builtin_cpu_supports("avx")) bits |= DST_CPU_AVX;
    if (__builtin_cpu_supports("fma")) bits |= DST_CPU_FMA;
    if (__builtin_cpu_supports("avx2")) bits |= DST_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f")) bits |= DST_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) bits |= DST_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512dq")) bits |= DST_CPU_AVX512DQ;
    if (__builtin_cpu_supports("avx512vl")) bits |= DST_CPU_AVX512VL;
    if (__builtin_cpu_supports("avx512bf16")) bits |= DST_CPU_AVX512BF16;
    return bits;
}

void dst_cpu_identity(char *out, int32_t *family, int32_t *model) {
    unsigned int r[4] = {0, 0, 0, 0};
    out[0] = 0;
    *family = 0;
    *model = 0;
    if (__get_cpuid(1, &r[0], &r[1], &r[2], &r[3])) {
        unsigned int base = (r[0] >> 8) & 0xf, extended = (r[0] >> 20) & 0xff;
        unsigned int low = (r[0] >> 4) & 0xf, high = (r[0] >> 16) & 0xf;
        *family = (int32_t)(base == 0xf ? base + extended : base);
        *model = (int32_t)((base == 0x6 || base == 0xf) ? (high << 4) + low : low);
    }
    if (__get_cpuid_max(0x80000000, 0) >= 0x80000004) {
        for (unsigned int leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &r[0], &r[1], &r[2], &r[3]);
            memcpy(out + 16 * leaf, r, 16);
        }
        out[48] = 0;
    }
}
#else
uint32_t dst_cpu_features(void) { return 0; }
void dst_cpu_identity(char *out, int32_t *family, int32_t *model) { out[0] = 0; *family = 0; *model = 0; }
#endif

static _Thread_local int32_t parallel_depth;
int32_t dst_parallel_depth(void) { return parallel_depth; }
void dst_set_parallel_depth(int32_t depth) { parallel_depth = depth; }

/// The shared line of dst_thread_round_trip_ns: round i is the caller's store of 2i + 1
/// and the partner's answer 2i + 2, for `rounds` rounds (0 before the first).
typedef struct { _Alignas(64) int64_t turn; int64_t rounds; } round_trip_line;

static void *round_trip_partner(void *arg) {
    round_trip_line *line = arg;
    for (int64_t i = 0; i < line->rounds; i++) {
        while (dst_atomic_load(&line->turn) != 2 * i + 1) dst_cpu_relax();
        dst_atomic_store(&line->turn, 2 * i + 2);
    }
    return NULL;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double dst_thread_round_trip_ns(int32_t rounds) {
    enum { BATCHES = 9 };
    if (rounds < BATCHES) rounds = BATCHES;
    int64_t per = rounds / BATCHES;
    round_trip_line *line = aligned_alloc(64, sizeof(round_trip_line));
    if (!line) return -1;
    line->turn = 0;
    line->rounds = per * BATCHES;
    usleep(2000);   // an idle worker pool goes to sleep and leaves its core
    pthread_t partner;
    if (pthread_create(&partner, NULL, round_trip_partner, line) != 0) { free(line); return -1; }
    double batch[BATCHES];
    int64_t i = 0;
    for (int b = 0; b < BATCHES; b++) {
        double start = seconds_now();
        for (int64_t end = i + per; i < end; i++) {
            dst_atomic_store(&line->turn, 2 * i + 1);
            while (dst_atomic_load(&line->turn) != 2 * i + 2) dst_cpu_relax();
        }
        batch[b] = (seconds_now() - start) / (double)per * 1e9;
    }
    pthread_join(partner, NULL);
    free(line);
    qsort(batch, BATCHES, sizeof(double), compare_doubles);
    return batch[BATCHES / 2];
}
