/* broker/config.h: the command line and the --config file, turned into a server_config. */
#ifndef WARREN_CONFIG_H
#define WARREN_CONFIG_H

#include "log.h"
#include "server.h"

struct config {
    struct server_config server;
    enum log_level log_level;
    char *owned[64]; /* strings read from the config file, freed by config_free */
    int owned_count;
};

/* Parses argv over the defaults; a --config FILE is read first and command-line flags win.
 * Returns 0, 1 when --help or --version was printed (exit 0), or -1 after printing the problem. */
int config_parse(struct config *cfg, int argc, char **argv);

/* This node's cluster address: cs->address when set (one of cs->peers for a founding member;
 * not among them for a node that joins a running cluster), else the only entry of cs->peers
 * whose port is cs->port. Writes it (NUL-terminated) to out[0..cap) and returns 0, or returns -1
 * with the reason in out (none or several entries with that port, too long). */
int config_cluster_address(const struct cluster_settings *cs, char *out, size_t cap);

/* Frees strings that config_parse allocated. */
void config_free(struct config *cfg);

#endif
