/* oneshot_step.c - what a shared-weight training step costs next to the
 * same child compiled once as a fixed net.
 *
 *     build/oneshot_step [children] [batch] [threads]    (default 8 64 2)
 *
 * For each of `children` random children of enas-micro (seeded, so every
 * run measures the same ones) it times, on random images:
 *  - fixed: the child lowered as a stand-alone net, compiled once, then
 *    training steps (forward, loss, backward, SGD);
 *  - shared: what ENAS does every step: lower the child with shared names,
 *    initialise the tensors it has not used before, compile (primitives
 *    from oneDNN's cache, the activation arena reused), the same step, and
 *    destroy the net;
 * and prints the per-step times, their ratio, the primitives the shared
 * compiles created on a second visit of the child (0 means every shape came
 * from the cache) and the compile's share of the step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nasc_backend.h"
#include "nasc_search.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHECK(x)                                                                                                       \
    do {                                                                                                               \
        if ((x) != NASC_OK) {                                                                                          \
            nasc_diag_print(&ctx.diag, stderr);                                                                       \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static nasc_ctx ctx;

static void step(nasc_net *net, nasc_optimizer *opt, const float *x, const int32_t *y) {
    float loss;
    int ok;
    CHECK(nasc_net_set_input(net, 0, x));
    CHECK(nasc_net_forward(net));
    CHECK(nasc_net_loss(net, y, &loss, &ok));
    CHECK(nasc_net_backward(net));
    const nasc_param_grad *g;
    uint32_t n = nasc_net_grads(net, &g);
    CHECK(nasc_optim_step(opt, g, n, 0.01f));
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 8, batch = argc > 2 ? atoi(argv[2]) : 64;
    int threads = argc > 3 ? atoi(argv[3]) : 2, reps = 6;
    nasc_ctx_init(&ctx);
    CHECK(nasc_backend_set_threads(&ctx, threads));
    CHECK(nasc_backend_reserve_primitives(&ctx, 8192));
    nasc_space *sp = NULL;
    CHECK(nasc_space_create(&ctx, "enas-micro", NULL, &sp));
    uint32_t n = nasc_space_count(sp);
    uint32_t *d = calloc(n, sizeof *d);
    float *x = malloc((size_t)batch * 28 * 28 * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    nasc_rng r;
    nasc_rng_seed(&r, 12345);
    for (int i = 0; i < batch * 28 * 28; i++) x[i] = 2 * nasc_rng_uniform(&r) - 1;
    for (int i = 0; i < batch; i++) y[i] = (int32_t)nasc_rng_below(&r, 10);
    nasc_optim_options oo = nasc_optim_options_default(NASC_OPTIM_SGD);
    nasc_param_store *shared = nasc_params_create(&ctx);
    nasc_optimizer *sopt = nasc_optim_create(&ctx, &oo, shared);
    nasc_net_arena arena = {&ctx, NULL, 0};
    double fixed_sum = 0, shared_sum = 0, compile_sum = 0;
    long created_second = 0;
    printf("child  fixed ms/step  shared ms/step  ratio  compile ms  created (1st visit, 2nd)\n");
    for (int c = 0; c < children; c++) {
        nasc_space_sample(sp, &r, d);
        nasc_module *arch = NULL, *prim = NULL;
        CHECK(nasc_space_decode(sp, d, &arch));
        /* fixed */
        CHECK(nasc_lower(arch, &prim));
        nasc_param_store *st = nasc_params_create(&ctx);
        CHECK(nasc_params_init(st, prim, 1));
        nasc_optimizer *opt = nasc_optim_create(&ctx, &oo, st);
        nasc_net_options no = nasc_net_options_default();
        no.batch = batch;
        nasc_net *net = NULL;
        CHECK(nasc_net_compile(&ctx, prim, st, &no, &net));
        for (int k = 0; k < 2; k++) step(net, opt, x, y);
        double t0 = now_s();
        for (int k = 0; k < reps; k++) step(net, opt, x, y);
        double fixed = (now_s() - t0) / reps;
        nasc_net_destroy(net);
        nasc_optim_destroy(opt);
        nasc_params_destroy(st);
        nasc_module_destroy(prim);
        /* shared: lower, init, compile, step, destroy, every step */
        nasc_lower_options lo = nasc_lower_options_default();
        lo.shared = NASC_SHARE_BY_INPUT;
        long created[2] = {0, 0};
        double shared_t = 0, compile_t = 0;
        for (int k = 0; k < reps + 1; k++) {
            double s0 = now_s();
            CHECK(nasc_lower_with(arch, &lo, &prim));
            CHECK(nasc_params_init(shared, prim, 1));
            nasc_net_options so = nasc_net_options_default();
            so.batch = batch;
            so.arena = &arena;
            CHECK(nasc_net_compile(&ctx, prim, shared, &so, &net));
            double s1 = now_s();
            nasc_net_stats ns;
            nasc_net_get_stats(net, &ns);
            if (k < 2) created[k] = ns.n_created;
            step(net, sopt, x, y);
            nasc_net_destroy(net);
            nasc_module_destroy(prim);
            if (k > 0) { /* the first visit creates this child's new shapes */
                shared_t += now_s() - s0;
                compile_t += s1 - s0;
            }
        }
        shared_t /= reps;
        compile_t /= reps;
        nasc_module_destroy(arch);
        printf("%5d  %13.1f  %14.1f  %5.2f  %10.1f  %ld, %ld\n", c, 1e3 * fixed, 1e3 * shared_t, shared_t / fixed,
               1e3 * compile_t, created[0], created[1]);
        fixed_sum += fixed;
        shared_sum += shared_t;
        compile_sum += compile_t;
        created_second += created[1];
    }
    printf("mean over %d children, batch %d, %d threads: fixed %.1f ms, shared %.1f ms a step: ratio %.2f; "
           "compile %.1f ms (%.0f%% of the shared step); primitives created on second visits: %ld\n",
           children, batch, threads, 1e3 * fixed_sum / children, 1e3 * shared_sum / children, shared_sum / fixed_sum,
           1e3 * compile_sum / children, 100 * compile_sum / shared_sum, created_second);
    nasc_net_arena_free(&arena);
    nasc_optim_destroy(sopt);
    nasc_params_destroy(shared);
    nasc_space_destroy(sp);
    free(d);
    free(x);
    free(y);
    return 0;
}
