/* Many small MLPs (d -> H -> 2, ReLU, inverted dropout) trained at once by minibatch Adam.
 *
 * The same algorithm as batched_mlp.train (and attacks/reference.py): class-weighted cross
 * entropy normalised by the minibatch's weight, Adam with L2 weight decay added to the gradient
 * (torch.optim.Adam), one shared minibatch order per epoch. Each problem trains alone on one
 * thread from start to end, so its data, weights and Adam moments stay in the core's L1/L2 cache,
 * and every example's forward and backward pass is fused (no activation is stored). The batched
 * torch code instead makes ~15 passes over [problems, batch, H] tensors per step, bound by
 * memory traffic.
 *
 * Dropout masks come from a splitmix64 stream per problem (seeded by `seed` and the problem's
 * index), one byte per unit compared with `drop_threshold` (0..256), as in batched_mlp.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* torch.optim.Adam (betas 0.9, 0.999, eps 1e-8) with weight decay added to the gradient. */
static void adam_step(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                      int64_t len, float step_size, float bias2_sqrt, float wd) {
    for (int64_t i = 0; i < len; i++) {
        float grad = g[i] + wd * p[i];
        m[i] += 0.1f * (grad - m[i]);
        v[i] = 0.999f * v[i] + 0.001f * grad * grad;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bias2_sqrt + 1e-8f);
    }
}

/* Train problem b from its initial weights (read from and written back to w1, b1, w2t, b2).
 * Inlined twice: once with H = 64 (the default, a constant the compiler unrolls and vectorises
 * fully) and once for any H. `buf` holds 4 * P + 3 * H floats and H bytes. */
static inline __attribute__((always_inline)) void train_problem(
    int64_t b, int64_t n, int64_t d, const int64_t H, int64_t epochs, int64_t batch,
    const float *restrict x, const uint8_t *restrict y, const float *restrict class_w,
    const int64_t *restrict perms, const float *restrict lrs, float wd, int32_t drop_threshold, uint64_t seed,
    float *restrict w1, float *restrict b1, float *restrict w2t, float *restrict b2, float *restrict buf,
    float *restrict xe, uint8_t *restrict ye) {
    const int64_t P = d * H + 3 * H + 2; /* parameters, packed: W1 [d, H], b1 [H], W2t [2, H], b2 [2] */
    const float inv_keep = drop_threshold ? 256.0f / (256.0f - (float)drop_threshold) : 1.0f;
    float *restrict prm = buf, *restrict grd = buf + P, *restrict mom = buf + 2 * P, *restrict var = buf + 3 * P;
    float *restrict z = buf + 4 * P, *restrict gate = z + H, *restrict act = gate + H;
    uint8_t *restrict bytes = (uint8_t *)(act + H);
    float *restrict W1 = prm, *restrict B1 = prm + d * H, *restrict W2 = B1 + H, *restrict B2 = W2 + 2 * H;
    float *restrict gW1 = grd, *restrict gB1 = grd + d * H, *restrict gW2 = gB1 + H, *restrict gB2 = gW2 + 2 * H;
    memcpy(W1, w1 + b * d * H, sizeof(float) * d * H);
    memcpy(B1, b1 + b * H, sizeof(float) * H);
    memcpy(W2, w2t + b * 2 * H, sizeof(float) * 2 * H);
    memcpy(B2, b2 + b * 2, sizeof(float) * 2);
    memset(mom, 0, sizeof(float) * P);
    memset(var, 0, sizeof(float) * P);
    memset(bytes, 255, (size_t)H); /* no dropout: every unit kept */
    const float *restrict xb = x + b * n * d;
    const uint8_t *restrict yb = y + b * n;
    const float cw[2] = {class_w[2 * b], class_w[2 * b + 1]};
    uint64_t rng = seed ^ ((uint64_t)(b + 1) * 0xD1B54A32D192ED03ULL);
    int64_t t = 0;
    for (int64_t e = 0; e < epochs; e++) {
        /* The epoch's order gathered once (xe, ye): then every minibatch reads memory in sequence,
         * which matters when a problem's data outgrows the cache (the shared classifier's). */
        const int64_t *restrict perm = perms + e * n;
        for (int64_t r = 0; r < n; r++) {
            memcpy(xe + r * d, xb + perm[r] * d, sizeof(float) * d);
            ye[r] = yb[perm[r]];
        }
        for (int64_t start = 0; start < n; start += batch) {
            const int64_t end = start + batch < n ? start + batch : n;
            float total_w = 0.0f;
            for (int64_t r = start; r < end; r++) total_w += cw[ye[r]];
            memset(grd, 0, sizeof(float) * P);
            for (int64_t r = start; r < end; r++) {
                const float *restrict xr = xe + r * d;
                const int label = ye[r];
                for (int64_t h = 0; h < H; h++) z[h] = B1[h];
                for (int64_t k = 0; k < d; k++) {
                    const float xk = xr[k];
                    for (int64_t h = 0; h < H; h++) z[h] += xk * W1[k * H + h];
                }
                if (drop_threshold) {
                    for (int64_t h = 0; h < H; h += 8) {
                        uint64_t bits = splitmix64(&rng);
                        for (int64_t j = h; j < h + 8 && j < H; j++, bits >>= 8) bytes[j] = (uint8_t)bits;
                    }
                }
                float l0 = B2[0], l1 = B2[1];
                for (int64_t h = 0; h < H; h++) {
                    /* Branch-free (a random branch mispredicts half the time): ReLU and dropout as one factor. */
                    gate[h] = (float)((z[h] > 0.0f) & ((int32_t)bytes[h] >= drop_threshold)) * inv_keep;
                    act[h] = z[h] * gate[h];
                    l0 += act[h] * W2[h];
                    l1 += act[h] * W2[H + h];
                }
                const float p1 = 1.0f / (1.0f + expf(l0 - l1));
                const float scale = cw[label] / total_w;
                const float d1 = (p1 - (float)(label == 1)) * scale;
                const float d0 = ((1.0f - p1) - (float)(label == 0)) * scale;
                gB2[0] += d0;
                gB2[1] += d1;
                for (int64_t h = 0; h < H; h++) {
                    gW2[h] += act[h] * d0;
                    gW2[H + h] += act[h] * d1;
                    z[h] = (W2[h] * d0 + W2[H + h] * d1) * gate[h]; /* z now holds dL/dz */
                    gB1[h] += z[h];
                }
                for (int64_t k = 0; k < d; k++) {
                    const float xk = xr[k];
                    for (int64_t h = 0; h < H; h++) gW1[k * H + h] += xk * z[h];
                }
            }
            t++;
            const float bias1 = 1.0f - powf(0.9f, (float)t);
            const float bias2_sqrt = sqrtf(1.0f - powf(0.999f, (float)t));
            adam_step(prm, grd, mom, var, P, lrs[e] / bias1, bias2_sqrt, wd);
        }
    }
    memcpy(w1 + b * d * H, W1, sizeof(float) * d * H);
    memcpy(b1 + b * H, B1, sizeof(float) * H);
    memcpy(w2t + b * 2 * H, W2, sizeof(float) * 2 * H);
    memcpy(b2 + b * 2, B2, sizeof(float) * 2);
}

/* Train problems [0, B) in place. x [B, n, d] float, y [B, n] uint8 (0/1), class_w [B, 2],
 * perms [epochs, n] int64, lrs [epochs] (each epoch's learning rate); weights w1 [B, d, H], b1 [B, H],
 * w2t [B, 2, H] (W2 transposed), b2 [B, 2].
 * Returns 0, or -1 when a thread's buffers could not be allocated (the weights are then incomplete).
 * Built without OpenMP, the pragmas are ignored and the problems train one after another. */
int tmi_train_mlps(int64_t B, int64_t n, int64_t d, int64_t H, int64_t epochs, int64_t batch,
                    const float *x, const uint8_t *y, const float *class_w, const int64_t *perms,
                    const float *lrs, float wd, int32_t drop_threshold, uint64_t seed, int32_t threads,
                    float *w1, float *b1, float *w2t, float *b2) {
    const int64_t P = d * H + 3 * H + 2;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *buf = malloc(sizeof(float) * (4 * P + 4 * H)); /* the last H floats hold the H mask bytes */
        float *xe = malloc(sizeof(float) * n * d);
        uint8_t *ye = malloc((size_t)n);
        const int ok = buf != NULL && xe != NULL && ye != NULL;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        /* Every thread enters the loop (a worksharing loop must be met by the whole team); one
         * without buffers skips its problems. */
#pragma omp for schedule(dynamic, 16)
        for (int64_t b = 0; b < B; b++) {
            if (!ok)
                continue;
            if (H == 64)
                train_problem(b, n, d, 64, epochs, batch, x, y, class_w, perms, lrs, wd, drop_threshold, seed,
                              w1, b1, w2t, b2, buf, xe, ye);
            else
                train_problem(b, n, d, H, epochs, batch, x, y, class_w, perms, lrs, wd, drop_threshold, seed,
                              w1, b1, w2t, b2, buf, xe, ye);
        }
        free(buf);
        free(xe);
        free(ye);
    }
    return failed ? -1 : 0;
}
