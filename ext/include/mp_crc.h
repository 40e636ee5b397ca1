/*
 * meterpoll checksum kernels: reflected CRC-16 (MODBUS, X-25, ARC), sum and XOR checks.
 *
 * All CRCs here are *reflected* (refin = refout = true): bytes enter least significant bit
 * first and the register shifts right.  A model is (reflected polynomial, init, xorout).
 *
 * Three paths, same result:
 *   mp_crc16_bytewise   one table lookup per byte (tails, tiny inputs)
 *   mp_crc16_slice8     slicing-by-8, 8 bytes per step (short frames, portable fallback)
 *   mp_crc16_clmul      carry-less multiply folding (PCLMULQDQ), 128 bytes per step, for
 *                       long buffers on x86-64 CPUs that have it (checked at run time)
 *
 * Folding (Gopal et al., "Fast CRC computation for generic polynomials using PCLMULQDQ"),
 * written for the reflected domain: a 16-byte block loaded little-endian is rev128(A) where A
 * is the block's polynomial (first byte = highest degree).  Moving A forward by D bits is
 * A_H * x^(D+64) + A_L * x^D (mod P); carry-less multiplication of bit-reversed 64-bit values
 * yields rev128(a*b*x), so the constants are rev64(x^(D+63) mod P) and rev64(x^(D-1) mod P).
 * The folded 16 bytes are congruent to the prefix they replace, so the byte-wise table
 * finishes the CRC from them (no Barrett step to get wrong).
 */
#ifndef MP_CRC_H
#define MP_CRC_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MP_HAVE_CLMUL_CODE 1
#include <immintrin.h>
#include <cpuid.h>
#else
#define MP_HAVE_CLMUL_CODE 0
#endif

typedef struct {
    uint16_t table[8][256];   /* slicing tables: table[k][b] = CRC of b followed by k zero bytes */
    uint16_t poly_normal;     /* polynomial without the x^16 term, MSB-first notation */
    uint16_t init;            /* initial register value (reflected) */
    uint16_t xorout;
    uint64_t k128[2];         /* folding constants for D = 128 bits   (lo lane, hi lane) */
    uint64_t k1024[2];        /* folding constants for D = 1024 bits  (8 lanes x 16 bytes) */
    uint64_t k64;             /* rev64(x^63 mod P): folds a lane's high 64 bits into its low part */
    uint64_t k512[2];         /* D = 512 bits: one zmm register forward by one register */
    uint64_t k2048[2];        /* D = 2048 bits: 4 zmm accumulators x 64 bytes */
} mp_crc16_model;

/* Lengths from which the folding path is used; below, slicing-by-8 wins. */
#define MP_CLMUL_MIN_LEN 256

static int mp_cpu_has_clmul = 0;      /* PCLMULQDQ + SSE4.1 */
static int mp_cpu_has_vpclmul512 = 0; /* VPCLMULQDQ on 512-bit registers (AVX-512F, OS-enabled) */

static inline uint64_t mp_load_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint64_t mp_rev64(uint64_t v) {
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) {
        r = (r << 1) | (v & 1u);
        v >>= 1;
    }
    return r;
}

/* x^n mod P in GF(2), P = x^16 + poly_normal, result in normal (MSB-first) notation. */
static uint32_t mp_xpow_mod16(unsigned n, uint16_t poly_normal) {
    uint32_t r = 1;
    for (unsigned i = 0; i < n; i++) {
        r <<= 1;
        if (r & 0x10000u) r ^= 0x10000u | poly_normal;
    }
    return r & 0xFFFFu;
}

static uint16_t mp_reflect16(uint16_t v) {
    uint16_t r = 0;
    for (int i = 0; i < 16; i++) {
        r = (uint16_t)((r << 1) | (v & 1u));
        v >>= 1;
    }
    return r;
}

static void mp_crc16_model_init(mp_crc16_model *m, uint16_t poly_normal, uint16_t init, uint16_t xorout) {
    uint16_t rpoly = mp_reflect16(poly_normal);
    m->poly_normal = poly_normal;
    m->init = init;
    m->xorout = xorout;
    for (int b = 0; b < 256; b++) {
        uint16_t c = (uint16_t)b;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (uint16_t)((c >> 1) ^ rpoly) : (uint16_t)(c >> 1);
        m->table[0][b] = c;
    }
    for (int b = 0; b < 256; b++) {
        for (int k = 1; k < 8; k++) {
            uint16_t prev = m->table[k - 1][b];
            m->table[k][b] = (uint16_t)((prev >> 8) ^ m->table[0][prev & 0xFF]);
        }
    }
    m->k128[0] = mp_rev64(mp_xpow_mod16(128 + 63, poly_normal));
    m->k128[1] = mp_rev64(mp_xpow_mod16(128 - 1, poly_normal));
    m->k1024[0] = mp_rev64(mp_xpow_mod16(1024 + 63, poly_normal));
    m->k1024[1] = mp_rev64(mp_xpow_mod16(1024 - 1, poly_normal));
    m->k64 = mp_rev64(mp_xpow_mod16(63, poly_normal));
    m->k512[0] = mp_rev64(mp_xpow_mod16(512 + 63, poly_normal));
    m->k512[1] = mp_rev64(mp_xpow_mod16(512 - 1, poly_normal));
    m->k2048[0] = mp_rev64(mp_xpow_mod16(2048 + 63, poly_normal));
    m->k2048[1] = mp_rev64(mp_xpow_mod16(2048 - 1, poly_normal));
}

static void mp_detect_cpu(void) {
#if MP_HAVE_CLMUL_CODE
    unsigned a, b, c, d;
    mp_cpu_has_clmul = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        /* PCLMULQDQ: ECX bit 1; SSE4.1: ECX bit 19 */
        mp_cpu_has_clmul = ((c >> 1) & 1u) && ((c >> 19) & 1u);
    }
    /* __builtin_cpu_supports also checks that the OS saves the zmm state (XCR0) */
    __builtin_cpu_init();
    mp_cpu_has_vpclmul512 = mp_cpu_has_clmul && __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("vpclmulqdq");
#endif
}

/* ---- byte-wise and slicing-by-8; `crc` is the raw register (no init/xorout applied) ---- */

static inline uint16_t mp_crc16_bytewise(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
    const uint16_t *t = m->table[0];
    while (n--) crc = (uint16_t)((crc >> 8) ^ t[(crc ^ *p++) & 0xFF]);
    return crc;
}

static inline uint16_t mp_crc16_step8v(const mp_crc16_model *m, uint64_t v) {
    return (uint16_t)(m->table[7][v & 0xFF] ^ m->table[6][(v >> 8) & 0xFF] ^
                      m->table[5][(v >> 16) & 0xFF] ^ m->table[4][(v >> 24) & 0xFF] ^
                      m->table[3][(v >> 32) & 0xFF] ^ m->table[2][(v >> 40) & 0xFF] ^
                      m->table[1][(v >> 48) & 0xFF] ^ m->table[0][v >> 56]);
}

static inline uint16_t mp_crc16_step8(const mp_crc16_model *m, uint16_t crc, const uint8_t *p) {
    return mp_crc16_step8v(m, mp_load_le64(p) ^ (uint64_t)crc);
}

static inline uint16_t mp_crc16_slice8(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
    while (n >= 8) {
        crc = mp_crc16_step8(m, crc, p);
        p += 8;
        n -= 8;
    }
    return mp_crc16_bytewise(m, crc, p, n);
}

#if MP_HAVE_CLMUL_CODE
__attribute__((target("pclmul,sse4.1")))
static inline __m128i mp_fold(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* Requires n >= 128.  Eight independent 16-byte lanes hide the multiplier's latency. */
__attribute__((target("pclmul,sse4.1")))
static uint16_t mp_crc16_clmul(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
    const __m128i k1024 = _mm_set_epi64x((long long)m->k1024[1], (long long)m->k1024[0]);
    const __m128i k128 = _mm_set_epi64x((long long)m->k128[1], (long long)m->k128[0]);
    __m128i x0 = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 64));
    __m128i x5 = _mm_loadu_si128((const __m128i *)(p + 80));
    __m128i x6 = _mm_loadu_si128((const __m128i *)(p + 96));
    __m128i x7 = _mm_loadu_si128((const __m128i *)(p + 112));
    /* a register value r is equivalent to XOR-ing r into the first two message bytes */
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)crc));
    p += 128;
    n -= 128;
    while (n >= 128) {
        x0 = _mm_xor_si128(mp_fold(x0, k1024), _mm_loadu_si128((const __m128i *)(p + 0)));
        x1 = _mm_xor_si128(mp_fold(x1, k1024), _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = _mm_xor_si128(mp_fold(x2, k1024), _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = _mm_xor_si128(mp_fold(x3, k1024), _mm_loadu_si128((const __m128i *)(p + 48)));
        x4 = _mm_xor_si128(mp_fold(x4, k1024), _mm_loadu_si128((const __m128i *)(p + 64)));
        x5 = _mm_xor_si128(mp_fold(x5, k1024), _mm_loadu_si128((const __m128i *)(p + 80)));
        x6 = _mm_xor_si128(mp_fold(x6, k1024), _mm_loadu_si128((const __m128i *)(p + 96)));
        x7 = _mm_xor_si128(mp_fold(x7, k1024), _mm_loadu_si128((const __m128i *)(p + 112)));
        p += 128;
        n -= 128;
    }
    __m128i x = x0;
    x = _mm_xor_si128(mp_fold(x, k128), x1);
    x = _mm_xor_si128(mp_fold(x, k128), x2);
    x = _mm_xor_si128(mp_fold(x, k128), x3);
    x = _mm_xor_si128(mp_fold(x, k128), x4);
    x = _mm_xor_si128(mp_fold(x, k128), x5);
    x = _mm_xor_si128(mp_fold(x, k128), x6);
    x = _mm_xor_si128(mp_fold(x, k128), x7);
    while (n >= 16) {
        x = _mm_xor_si128(mp_fold(x, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    uint8_t folded[16];
    _mm_storeu_si128((__m128i *)folded, x);
    uint16_t r = mp_crc16_slice8(m, 0, folded, 16);
    return mp_crc16_slice8(m, r, p, n);
}
#endif

#if MP_HAVE_CLMUL_CODE
/* Short frames (32..255 bytes): fold 16-byte blocks into the last full one, then two table
 * steps.  Half the work of slicing-by-8 on a 32-byte frame, and short enough a chain that
 * consecutive frames overlap in the CPU. */
#define MP_SHORT_CLMUL_MIN_LEN 32

/* CRC register (init 0) of the 16 message bytes held in x (reflected).  x = F_H*x^64 + F_L is
 * replaced by F_H*(x^64 mod P) + F_L (< 80 bits: leading zero bytes do not change a CRC with
 * init 0), the 16 bits above F_L are folded the same way (< 64 bits), and the last eight
 * bytes go through the slicing tables. */
__attribute__((target("pclmul,sse4.1")))
static inline uint16_t mp_crc16_reduce128(const mp_crc16_model *m, __m128i x) {
    const __m128i k = _mm_set_epi64x(0, (long long)m->k64);
    const __m128i zero = _mm_setzero_si128();
    x = _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_unpackhi_epi64(zero, x));
    x = _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_unpackhi_epi64(zero, x));
    return mp_crc16_step8v(m, (uint64_t)_mm_extract_epi64(x, 1));
}
__attribute__((target("pclmul,sse4.1")))
static uint16_t mp_crc16_clmul_short(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
    const __m128i k128 = _mm_set_epi64x((long long)m->k128[1], (long long)m->k128[0]);
    __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
    p += 16;
    n -= 16;
    while (n >= 16) {
        x = _mm_xor_si128(mp_fold(x, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    return mp_crc16_slice8(m, mp_crc16_reduce128(m, x), p, n);
}

#define MP_VPCLMUL_MIN_LEN 1024

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static inline __m512i mp_fold512(__m512i x, __m512i k, __m512i next) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

/* Requires n >= 256.  Four zmm accumulators (16 lanes of 16 bytes) advance 256 bytes a step. */
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))
static uint16_t mp_crc16_vpclmul512(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)m->k2048[1], (long long)m->k2048[0]));
    const __m512i k512 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)m->k512[1], (long long)m->k512[0]));
    const __m128i k128 = _mm_set_epi64x((long long)m->k128[1], (long long)m->k128[0]);
    __m512i x0 = _mm512_loadu_si512((const void *)(p + 0));
    __m512i x1 = _mm512_loadu_si512((const void *)(p + 64));
    __m512i x2 = _mm512_loadu_si512((const void *)(p + 128));
    __m512i x3 = _mm512_loadu_si512((const void *)(p + 192));
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256;
    n -= 256;
    while (n >= 256) {
        x0 = mp_fold512(x0, k2048, _mm512_loadu_si512((const void *)(p + 0)));
        x1 = mp_fold512(x1, k2048, _mm512_loadu_si512((const void *)(p + 64)));
        x2 = mp_fold512(x2, k2048, _mm512_loadu_si512((const void *)(p + 128)));
        x3 = mp_fold512(x3, k2048, _mm512_loadu_si512((const void *)(p + 192)));
        p += 256;
        n -= 256;
    }
    __m512i x = mp_fold512(x0, k512, x1);
    x = mp_fold512(x, k512, x2);
    x = mp_fold512(x, k512, x3);
    while (n >= 64) {
        x = mp_fold512(x, k512, _mm512_loadu_si512((const void *)p));
        p += 64;
        n -= 64;
    }
    __m128i y = _mm512_extracti32x4_epi32(x, 0);
    y = _mm_xor_si128(mp_fold(y, k128), _mm512_extracti32x4_epi32(x, 1));
    y = _mm_xor_si128(mp_fold(y, k128), _mm512_extracti32x4_epi32(x, 2));
    y = _mm_xor_si128(mp_fold(y, k128), _mm512_extracti32x4_epi32(x, 3));
    while (n >= 16) {
        y = _mm_xor_si128(mp_fold(y, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    uint8_t folded[16];
    _mm_storeu_si128((__m128i *)folded, y);
    uint16_t r = mp_crc16_slice8(m, 0, folded, 16);
    return mp_crc16_slice8(m, r, p, n);
}
#endif

/* Raw register update over any length, choosing the fastest path. */
static inline uint16_t mp_crc16_update(const mp_crc16_model *m, uint16_t crc, const uint8_t *p, size_t n) {
#if MP_HAVE_CLMUL_CODE
    if (n >= MP_CLMUL_MIN_LEN && mp_cpu_has_clmul) {
        if (n >= MP_VPCLMUL_MIN_LEN && mp_cpu_has_vpclmul512) return mp_crc16_vpclmul512(m, crc, p, n);
        return mp_crc16_clmul(m, crc, p, n);
    }
    if (n >= MP_SHORT_CLMUL_MIN_LEN && mp_cpu_has_clmul) return mp_crc16_clmul_short(m, crc, p, n);
#endif
    return mp_crc16_slice8(m, crc, p, n);
}

static inline uint16_t mp_crc16(const mp_crc16_model *m, const uint8_t *p, size_t n) {
    return (uint16_t)(mp_crc16_update(m, m->init, p, n) ^ m->xorout);
}

/*
 * A whole batch: frame i is base[off[i]:off[i+1]].  Short frames are processed four at a time
 * in lockstep so that four independent table chains overlap (one chain is latency-bound);
 * long frames go through the folding path.  Returns the index of the first frame whose
 * offsets are out of order or past `limit` (nothing is read for it or after it), else -1.
 */
static int64_t mp_crc16_many(const mp_crc16_model *m, const uint8_t *base, const int64_t *off,
                             int64_t nframes, int64_t limit, uint16_t *out) {
    int64_t i = 0;
    const uint16_t init = m->init, xo = m->xorout;
    for (; mp_cpu_has_clmul == 0 && i + 4 <= nframes; i += 4) {
        int64_t o0 = off[i], o1 = off[i + 1], o2 = off[i + 2], o3 = off[i + 3], o4 = off[i + 4];
        if (!(o0 >= 0 && o0 <= o1 && o1 <= o2 && o2 <= o3 && o3 <= o4 && o4 <= limit)) break;
        const uint8_t *p0 = base + o0, *p1 = base + o1, *p2 = base + o2, *p3 = base + o3;
        size_t l0 = (size_t)(o1 - o0), l1 = (size_t)(o2 - o1), l2 = (size_t)(o3 - o2), l3 = (size_t)(o4 - o3);
        size_t common = l0;
        if (l1 < common) common = l1;
        if (l2 < common) common = l2;
        if (l3 < common) common = l3;
        if (common >= MP_CLMUL_MIN_LEN) common = 0;  /* long frames: the folding path does better */
        common &= ~(size_t)7;
        uint16_t c0 = init, c1 = init, c2 = init, c3 = init;
        for (size_t k = 0; k < common; k += 8) {
            c0 = mp_crc16_step8(m, c0, p0 + k);
            c1 = mp_crc16_step8(m, c1, p1 + k);
            c2 = mp_crc16_step8(m, c2, p2 + k);
            c3 = mp_crc16_step8(m, c3, p3 + k);
        }
        out[i] = (uint16_t)(mp_crc16_update(m, c0, p0 + common, l0 - common) ^ xo);
        out[i + 1] = (uint16_t)(mp_crc16_update(m, c1, p1 + common, l1 - common) ^ xo);
        out[i + 2] = (uint16_t)(mp_crc16_update(m, c2, p2 + common, l2 - common) ^ xo);
        out[i + 3] = (uint16_t)(mp_crc16_update(m, c3, p3 + common, l3 - common) ^ xo);
    }
    for (; i < nframes; i++) {
        int64_t s = off[i], e = off[i + 1];
        if (!(s >= 0 && s <= e && e <= limit)) return i;
        out[i] = (uint16_t)(mp_crc16_update(m, init, base + s, (size_t)(e - s)) ^ xo);
    }
    return -1;
}

/* Portable path only, for tests that compare the two. */
static inline uint16_t mp_crc16_portable(const mp_crc16_model *m, const uint8_t *p, size_t n) {
    return (uint16_t)(mp_crc16_slice8(m, m->init, p, n) ^ m->xorout);
}

/* ---- 8-bit checks ---- */

/* The 8-bit checks accumulate in a byte, which wraps mod 256 exactly as the checksum does, so
 * the compiler turns the loops into vector adds/XORs; target_clones picks x86-64-v4 (AVX-512), x86-64-v3 (AVX2) or
 * the SSE2 baseline at load time (GNU ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MP_CLONES
#endif

/* Arithmetic sum of all bytes mod 256 (M-Bus CS). */
MP_CLONES static uint8_t mp_sum8(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc = (uint8_t)(acc + p[i]);
    return acc;
}

/* XOR of all bytes (IEC 62056-21 BCC). */
MP_CLONES static uint8_t mp_xor8(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= p[i];
    return acc;
}

/* ---- the models every protocol uses, initialised once per extension module ---- */

static mp_crc16_model MP_CRC16_MODBUS;   /* poly 0x8005, init 0xFFFF, xorout 0x0000: Modbus RTU, Mercury */
static mp_crc16_model MP_CRC16_X25;      /* poly 0x1021, init 0xFFFF, xorout 0xFFFF: DLMS/HDLC HCS, FCS */
static mp_crc16_model MP_CRC16_ARC;      /* poly 0x8005, init 0x0000, xorout 0x0000: DSMR P1 telegrams */
static int mp_crc_ready = 0;

static void mp_crc_init_all(void) {
    if (mp_crc_ready) return;
    mp_crc16_model_init(&MP_CRC16_MODBUS, 0x8005, 0xFFFF, 0x0000);
    mp_crc16_model_init(&MP_CRC16_X25, 0x1021, 0xFFFF, 0xFFFF);
    mp_crc16_model_init(&MP_CRC16_ARC, 0x8005, 0x0000, 0x0000);
    mp_detect_cpu();
    mp_crc_ready = 1;
}

#endif /* MP_CRC_H */
