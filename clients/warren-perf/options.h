/* Command-line options of warren-perf. */
#ifndef WARREN_PERF_OPTIONS_H
#define WARREN_PERF_OPTIONS_H

#include "perf.h"

/* Fill config from argv. Returns 0 to run, 1 when --help was printed, -1 after printing an error. */
int options_parse(int argc, char **argv, struct perf_config *config);

#endif
