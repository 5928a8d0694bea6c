/* run.c - the search run: evaluator, journal, resume (nasc search). */
#include "nasc_search.h"
