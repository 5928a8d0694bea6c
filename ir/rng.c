/* rng.c - deterministic random numbers: xoshiro256** seeded by splitmix64.
 *
 * Everything here is defined by integer arithmetic on uint64_t (plus libm
 * for the normal transform), so a seed gives the same stream on every
 * machine and compiler. Reference: Blackman and Vigna, "Scrambled linear
 * pseudorandom number generators" (2018), prng.di.unimi.it.
 */
#include <math.h>

#include "nasc_ir.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* splitmix64 is a bijection of its counter, so four consecutive outputs are
 * never all zero: the xoshiro state is always valid. */
void nasc_rng_seed(nasc_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t nasc_rng_next(nasc_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Rejection: draws below 2^64 mod n would favour the small residues, so
 * they are drawn again (at most half the range, usually a tiny fraction). */
uint64_t nasc_rng_below(nasc_rng *r, uint64_t n) {
    if (n <= 1) return 0; /* n == 0 is a caller bug; 0 is the harmless answer */
    uint64_t threshold = (0 - n) % n; /* == 2^64 mod n */
    for (;;) {
        uint64_t x = nasc_rng_next(r);
        if (x >= threshold) return x % n;
    }
}

/* The top 24 bits: every value k * 2^-24 exactly representable in a float. */
float nasc_rng_uniform(nasc_rng *r) {
    return (float)(nasc_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Box-Muller, one value per call (no cached second value, so the stream is
 * a pure function of the state). u1 is in (0, 1] so log(u1) is finite. */
float nasc_rng_normal(nasc_rng *r) {
    double u1 = (double)((nasc_rng_next(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (double)(nasc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
}

uint64_t nasc_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}
