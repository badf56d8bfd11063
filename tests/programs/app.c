/*
 * A FastCGI program in C on libfcgi (fcgi2), as `fcgi serve --app exec` runs it: it accepts on
 * the listening socket it inherits on fd 0 and answers each request, one at a time, with what
 * every program in this directory answers (tests/support/programs.rs reads it):
 *
 *     hello from libfcgi
 *     pid=<its process id>
 *     method=<REQUEST_METHOD>
 *     query=<QUERY_STRING>
 *     length=<bytes of request body read>
 *     sha256=<hex SHA-256 of the body>
 *
 * A query with `sleep_ms=N` makes it wait N ms before it answers, so that a test can keep it
 * busy. The tests compile it with `cc -O2 app.c -lfcgi` (Debian's libfcgi-dev).
 */
#include <fcgiapp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SHA-256 (FIPS 180-4), small and slow enough: the bodies are a few MiB. */
struct sha256 {
    uint32_t h[8];
    uint64_t length;
    unsigned char block[64];
    size_t used;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->length = 0;
    s->used = 0;
}

static void sha256_update(struct sha256 *s, const unsigned char *p, size_t n)
{
    s->length += n;
    while (n > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, take);
        s->used += take, p += take, n -= take;
        if (s->used == 64) {
            sha256_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha256_hex(struct sha256 *s, char out[65])
{
    uint64_t bits = s->length * 8;
    unsigned char pad[72] = {0x80};
    size_t padding = (s->used < 56 ? 56 : 120) - s->used;
    int i;

    for (i = 0; i < 8; i++)
        pad[padding + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, pad, padding + 8);
    for (i = 0; i < 8; i++)
        sprintf(out + 8 * i, "%08x", s->h[i]);
}

int main(void)
{
    FCGX_Request request;
    static char buffer[65536];

    if (FCGX_Init() != 0 || FCGX_InitRequest(&request, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&request) >= 0) {
        const char *method = FCGX_GetParam("REQUEST_METHOD", request.envp);
        const char *query = FCGX_GetParam("QUERY_STRING", request.envp);
        const char *sleep = query ? strstr(query, "sleep_ms=") : NULL;
        struct sha256 hash;
        unsigned long long length;
        char hex[65];
        int n;

        sha256_init(&hash);
        while ((n = FCGX_GetStr(buffer, sizeof buffer, request.in)) > 0)
            sha256_update(&hash, (unsigned char *)buffer, (size_t)n);
        if (sleep)
            usleep((useconds_t)atoi(sleep + strlen("sleep_ms=")) * 1000);
        length = hash.length;
        sha256_hex(&hash, hex);
        FCGX_FPrintF(request.out,
                     "Content-Type: text/plain\r\n\r\n"
                     "hello from libfcgi\npid=%d\nmethod=%s\nquery=%s\nlength=%llu\nsha256=%s\n",
                     (int)getpid(), method ? method : "", query ? query : "",
                     length, hex);
        FCGX_Finish_r(&request);
    }
    return 0;
}
