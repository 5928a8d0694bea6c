/* text_internal.h - pieces shared by the text IR printer and parser. */
#ifndef NASC_TEXT_INTERNAL_H
#define NASC_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "nasc_ir.h"

/* Characters of value and cell names after the sigil (docs/text-ir.md). */
static inline bool nasc_text_name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
}

/* Characters of a `group` name: any printable ASCII except space and '#'. */
static inline bool nasc_text_group_char(int c) { return c > ' ' && c < 127 && c != '#'; }

#endif
