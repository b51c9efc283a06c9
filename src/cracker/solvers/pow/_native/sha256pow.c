/*
 * _sha256pow: the C fast path of the SHA-256 proof-of-work families.
 *
 * search(prefix, start, stop, mode, target, nibbles, flag) finds the first n in [start, stop)
 * with SHA-256(prefix || decimal(n)) matching, and returns it (-1: none, or stopped by flag).
 *   mode 0: digest == target (32 bytes)            ALTCHA v1
 *   mode 1: hex digest starts with `nibbles` hex digits of target   Cap, pow-sha256
 *   mode 2: first 16 digest bytes (big-endian) >= target (16 bytes)  mCaptcha
 * The prefix's whole 64-byte blocks are compressed once (the midstate); each attempt only
 * compresses the last one or two blocks, whose decimal digits are incremented in place.
 * `flag` (a one-byte buffer or None) is polled every 65,536 attempts: non-zero stops the search.
 * The GIL is released while hashing. SHA-NI is used when the CPU has it, portable C otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SHANI_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *data, size_t blocks);

/* ------------------------------------------------------------------ portable C */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t state[8], const uint8_t *data, size_t blocks) {
    uint32_t w[64];
    while (blocks--) {
        for (int i = 0; i < 16; i++) {
            w[i] = (uint32_t)data[4 * i] << 24 | (uint32_t)data[4 * i + 1] << 16 |
                   (uint32_t)data[4 * i + 2] << 8 | (uint32_t)data[4 * i + 3];
        }
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
        data += 64;
    }
}

/* ------------------------------------------------------------------ SHA-NI (x86) */

#ifdef HAVE_SHANI_CODE
#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* Four rounds: message vector M (already scheduled), round constants K[4r..4r+3]. */
#define RNDS4(M, r)                                                     \
    do {                                                                \
        msg = _mm_add_epi32((M), _mm_loadu_si128((const __m128i *)&K[4 * (r)])); \
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);            \
        msg = _mm_shuffle_epi32(msg, 0x0E);                             \
        state0 = _mm_sha256rnds2_epu32(state0, state1, msg);            \
    } while (0)

/* Message schedule step: next += alignr(cur, prev, 4); next = msg2(next, cur). */
#define SCHED2(next, cur, prev)                                         \
    do {                                                                \
        (next) = _mm_add_epi32((next), _mm_alignr_epi8((cur), (prev), 4)); \
        (next) = _mm_sha256msg2_epu32((next), (cur));                   \
    } while (0)

SHANI static void compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i state0, state1, msg, tmp, m0, m1, m2, m3, abef, cdgh;

    tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);            /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);      /* EFGH */
    state0 = _mm_alignr_epi8(tmp, state1, 8);      /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);   /* CDGH */

    while (blocks--) {
        abef = state0;
        cdgh = state1;
        m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), mask);
        m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), mask);
        m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), mask);
        m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), mask);

        RNDS4(m0, 0);
        RNDS4(m1, 1);  m0 = _mm_sha256msg1_epu32(m0, m1);
        RNDS4(m2, 2);  m1 = _mm_sha256msg1_epu32(m1, m2);
        /* Rounds 12..51: the same step with the four message vectors rotating. */
        RNDS4(m3, 3);  SCHED2(m0, m3, m2); m2 = _mm_sha256msg1_epu32(m2, m3);
        RNDS4(m0, 4);  SCHED2(m1, m0, m3); m3 = _mm_sha256msg1_epu32(m3, m0);
        RNDS4(m1, 5);  SCHED2(m2, m1, m0); m0 = _mm_sha256msg1_epu32(m0, m1);
        RNDS4(m2, 6);  SCHED2(m3, m2, m1); m1 = _mm_sha256msg1_epu32(m1, m2);
        RNDS4(m3, 7);  SCHED2(m0, m3, m2); m2 = _mm_sha256msg1_epu32(m2, m3);
        RNDS4(m0, 8);  SCHED2(m1, m0, m3); m3 = _mm_sha256msg1_epu32(m3, m0);
        RNDS4(m1, 9);  SCHED2(m2, m1, m0); m0 = _mm_sha256msg1_epu32(m0, m1);
        RNDS4(m2, 10); SCHED2(m3, m2, m1); m1 = _mm_sha256msg1_epu32(m1, m2);
        RNDS4(m3, 11); SCHED2(m0, m3, m2); m2 = _mm_sha256msg1_epu32(m2, m3);
        RNDS4(m0, 12); SCHED2(m1, m0, m3); m3 = _mm_sha256msg1_epu32(m3, m0);
        RNDS4(m1, 13); SCHED2(m2, m1, m0);
        RNDS4(m2, 14); SCHED2(m3, m2, m1);
        RNDS4(m3, 15);

        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);         /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);      /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);   /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);      /* ABEF */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA extensions */
}
#endif

static compress_fn compress = compress_portable;
static const char *compress_name = "portable";

/* ------------------------------------------------------------------ the search */

typedef struct {
    uint8_t block[128];   /* tail of the prefix, digits, padding, bit length */
    size_t tail;          /* prefix bytes after its last whole block */
    size_t digits;        /* decimal digits of the current nonce */
    size_t nblocks;       /* 1 or 2 */
    uint64_t total;       /* prefix length in bytes */
} message_t;

static void message_set(message_t *m, uint64_t n) {
    char text[24];
    int k = snprintf(text, sizeof text, "%llu", (unsigned long long)n);
    m->digits = (size_t)k;
    memcpy(m->block + m->tail, text, m->digits);
    size_t used = m->tail + m->digits;
    m->nblocks = used + 9 <= 64 ? 1 : 2;
    size_t end = 64 * m->nblocks;
    m->block[used] = 0x80;
    memset(m->block + used + 1, 0, end - used - 1);
    uint64_t bits = (m->total + m->digits) * 8;
    for (int i = 0; i < 8; i++) m->block[end - 1 - i] = (uint8_t)(bits >> (8 * i));
}

/* n -> n + 1 in place; returns 0 when the digit count grew (the caller rebuilds). */
static int message_increment(message_t *m) {
    uint8_t *first = m->block + m->tail;
    uint8_t *p = first + m->digits - 1;
    while (p >= first && *p == '9') *p-- = '0';
    if (p < first) return 0;
    (*p)++;
    return 1;
}

static inline int matches(const uint32_t h[8], int mode, const uint32_t t[8], const uint32_t masks[8]) {
    if (mode == 0) {
        for (int i = 0; i < 8; i++) if (h[i] != t[i]) return 0;
        return 1;
    }
    if (mode == 1) {
        for (int i = 0; i < 8 && masks[i]; i++) if ((h[i] & masks[i]) != t[i]) return 0;
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        if (h[i] != t[i]) return h[i] > t[i];
    }
    return 1;
}

static PyObject *search(PyObject *self, PyObject *args) {
    Py_buffer prefix, target;
    unsigned long long start, stop;
    int mode, nibbles;
    PyObject *flag_obj;
    if (!PyArg_ParseTuple(args, "y*KKiy*iO", &prefix, &start, &stop, &mode, &target, &nibbles, &flag_obj)) {
        return NULL;
    }
    Py_buffer flag = {0};
    int have_flag = 0;
    PyObject *result = NULL;
    uint32_t t[8] = {0}, masks[8] = {0};
    uint8_t raw[32] = {0};

    if (mode < 0 || mode > 2 || (mode == 0 && target.len != 32) || (mode == 2 && target.len != 16) ||
        (mode == 1 && (nibbles < 1 || nibbles > 64 || target.len != (nibbles + 1) / 2))) {
        PyErr_SetString(PyExc_ValueError, "bad mode / target / nibbles");
        goto done;
    }
    if (flag_obj != Py_None) {
        if (PyObject_GetBuffer(flag_obj, &flag, PyBUF_SIMPLE) < 0) goto done;
        have_flag = 1;
        if (flag.len < 1) {
            PyErr_SetString(PyExc_ValueError, "flag buffer is empty");
            goto done;
        }
    }
    memcpy(raw, target.buf, (size_t)target.len);
    for (int i = 0; i < 8; i++) {
        t[i] = (uint32_t)raw[4 * i] << 24 | (uint32_t)raw[4 * i + 1] << 16 | (uint32_t)raw[4 * i + 2] << 8 | raw[4 * i + 3];
    }
    if (mode == 1) {
        for (int i = 0; i < 8; i++) {
            int left = nibbles - 8 * i;
            masks[i] = left >= 8 ? 0xFFFFFFFFu : left <= 0 ? 0 : ~(0xFFFFFFFFu >> (4 * left));
            t[i] &= masks[i];
        }
    }

    int hit = 0;
    unsigned long long found = 0;
    const uint8_t *bytes = prefix.buf;
    size_t whole = (size_t)prefix.len / 64 * 64;
    uint32_t mid[8];
    memcpy(mid, H0, sizeof mid);
    message_t m;
    m.total = (uint64_t)prefix.len;
    m.tail = (size_t)prefix.len - whole;
    const volatile char *stop_flag = have_flag ? (const volatile char *)flag.buf : NULL;

    Py_BEGIN_ALLOW_THREADS
    compress(mid, bytes, whole / 64);
    memcpy(m.block, bytes + whole, m.tail);
    if (start < stop) message_set(&m, start);
    for (unsigned long long n = start; n < stop; n++) {
        if (stop_flag && ((n - start) & 0xFFFF) == 0 && *stop_flag) break;
        uint32_t h[8];
        memcpy(h, mid, sizeof h);
        compress(h, m.block, m.nblocks);
        if (matches(h, mode, t, masks)) {
            hit = 1;
            found = n;
            break;
        }
        if (!message_increment(&m) && n + 1 < stop) message_set(&m, n + 1);
    }
    Py_END_ALLOW_THREADS

    result = hit ? PyLong_FromUnsignedLongLong(found) : PyLong_FromLong(-1);
done:
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&target);
    if (have_flag) PyBuffer_Release(&flag);
    return result;
}

static PyObject *set_implementation(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    if (strcmp(name, "portable") == 0) {
        compress = compress_portable;
        compress_name = "portable";
    }
#ifdef HAVE_SHANI_CODE
    else if (strcmp(name, "sha-ni") == 0 && cpu_has_shani()) {
        compress = compress_shani;
        compress_name = "sha-ni";
    }
#endif
    else {
        PyErr_Format(PyExc_ValueError, "implementation %s is not available here", name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *implementation(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(compress_name);
}

static PyMethodDef methods[] = {
    {"search", search, METH_VARARGS,
     "search(prefix, start, stop, mode, target, nibbles, flag) -> first matching nonce or -1"},
    {"implementation", implementation, METH_NOARGS, "The compression function in use: 'sha-ni' or 'portable'."},
    {"set_implementation", set_implementation, METH_O, "Force 'sha-ni' or 'portable' (tests, benchmarks)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sha256pow", "SHA-256 proof-of-work search (C).", -1, methods};

PyMODINIT_FUNC PyInit__sha256pow(void) {
#ifdef HAVE_SHANI_CODE
    if (cpu_has_shani()) {
        compress = compress_shani;
        compress_name = "sha-ni";
    }
#endif
    return PyModule_Create(&module);
}
