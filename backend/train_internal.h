/* train_internal.h - what the two trainers share: train.c (images) and
 * lm.c (character language models). */
#ifndef NASC_TRAIN_INTERNAL_H
#define NASC_TRAIN_INTERNAL_H

#include "nasc_backend.h"

/* Seconds on the monotonic clock. */
double nb_train_now(void);
/* A number as store meta ("%.9g"). */
nasc_status nb_set_meta_num(nasc_param_store *s, const char *key, double v);

/* Fill *p for step `step` (1-based) of epoch e, global step `global`, and
 * hand it to o->progress: loss and acc are the epoch's running means,
 * units_per_step the images or characters a step reads (for the rate
 * since t0), run_steps the steps this call has run of total_steps. The
 * callback's status, NASC_OK without one. */
nasc_status nb_report_step(const nasc_train_options *o, nasc_train_progress *p, int e, int64_t step, int64_t global,
                           int64_t run_steps, int64_t total_steps, float loss, float acc, double units_per_step,
                           double t0, float lr);

/* The end of epoch e, validated at val_acc, val_loss: into *out, meta
 * "train/epoch" (epochs done) and the progress callback. */
nasc_status nb_end_epoch(const nasc_train_options *o, nasc_train_progress *p, nasc_param_store *store, int e,
                         float val_acc, float val_loss, nasc_train_result *out);

#endif /* NASC_TRAIN_INTERNAL_H */
