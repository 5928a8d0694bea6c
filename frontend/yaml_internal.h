/* yaml_internal.h - helpers shared by frontend/yaml.c and frontend/load.c. */
#ifndef NASC_YAML_INTERNAL_H
#define NASC_YAML_INTERNAL_H

#include "nasc_frontend.h"

/* Apply `--set key=value` overrides to a skeleton; errors are reported as
 * "<file>: error: --set KEY=VALUE: message" (no line). */
nasc_status nasc_yaml_apply_overrides(nasc_ctx *ctx, const char *file, nasc_skeleton *sk,
                                      const nasc_override *ov, size_t n_ov);

/* Levenshtein distance of two short strings (INT_MAX when either is longer than 64). */
int nasc_yaml_edit_distance(const char *a, size_t na, const char *b, size_t nb);

#endif
