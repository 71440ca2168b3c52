/* broker/config.c: command-line flags and the config file. The file is "key = value" lines
 * ('#' starts a comment), using the same names as the long flags plus the tuning keys below. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: warren [--bind ADDR] [--port N] [--data-dir DIR] [--config FILE] [--log-level LEVEL]\n"
    "  --bind ADDR        address to listen on (default 0.0.0.0)\n"
    "  --port N           AMQP port (default 5672)\n"
    "  --data-dir DIR     where durable state lives (default ./warren-data)\n"
    "  --config FILE      key = value settings; see docs/operations.md\n"
    "  --log-level LEVEL  debug, info, warning or error (default info)\n"
    "  --management_port N  HTTP management API (default 15672; 0: off)\n"
    "  --prometheus_port N  Prometheus metrics (default 15692; 0: off)\n"
    "  --tls_port N       AMQPS (default 5671 once tls_certfile is set; docs/tls.md)\n"
    "  --cluster_port N   inter-node port (default 0: no cluster; docs/cluster.md), with\n"
    "  --cluster_peers H:P,...  every founding member's host:cluster_port, this node included\n"
    "                     (a node that joins later: members to ask, with --cluster_address)\n"
    "  --cluster_address H:P  this node's address as peers reach it (its port may differ from cluster_port)\n"
    "  --cluster_secret_file F  the members' shared secret (required with cluster_port)\n"
    "  --cluster_recover H:P,...  after a lost majority: restart this survivor (the one with the\n"
    "                     longest log, everything stopped) as a cluster of these members; once\n"
    "  --KEY VALUE        any configuration-file key, e.g. --queue_ram_messages 1000\n";

#define RECOVER_KEY "cluster_recover" /* command line only: --cluster_recover */

static int parse_uint(const char *key, const char *text, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end != '\0' || v > max) {
        fprintf(stderr, "warren: invalid value '%s' for %s\n", text, key);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *key, const char *text, bool *out)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
        *out = true;
    } else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *out = false;
    } else {
        fprintf(stderr, "warren: %s must be true or false, not '%s'\n", key, text);
        return -1;
    }
    return 0;
}

static const char *keep(struct config *cfg, const char *value)
{
    if (cfg->owned_count == (int)(sizeof cfg->owned / sizeof *cfg->owned))
        return NULL;
    char *copy = strdup(value);
    if (copy)
        cfg->owned[cfg->owned_count++] = copy;
    return copy;
}

/* Applies one setting; `owned` says whether value must be copied (config file lines). */
static int apply(struct config *cfg, const char *key, const char *value, int owned)
{
    struct server_config *s = &cfg->server;
    unsigned long long v;
    if (owned && !(value = keep(cfg, value)))
        return -1;
    if (strcmp(key, "bind") == 0) {
        s->bind_address = value;
    } else if (strcmp(key, "data-dir") == 0 || strcmp(key, "data_dir") == 0) {
        s->data_dir = value;
    } else if (strcmp(key, "log-level") == 0 || strcmp(key, "log_level") == 0) {
        if (log_parse_level(value, &cfg->log_level) != 0) {
            fprintf(stderr, "warren: unknown log level '%s'\n", value);
            return -1;
        }
    } else if (strcmp(key, "port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->port = (uint16_t)v;
    } else if (strcmp(key, "management_port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->management_port = (uint16_t)v;
    } else if (strcmp(key, "prometheus_port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->prometheus_port = (uint16_t)v;
    } else if (strcmp(key, "channel_max") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->channel_max = (uint16_t)v;
    } else if (strcmp(key, "frame_max") == 0) {
        if (parse_uint(key, value, 1u << 30, &v) || v < 4096) {
            fprintf(stderr, "warren: frame_max must be between 4096 and 2^30\n");
            return -1;
        }
        s->frame_max = (uint32_t)v;
    } else if (strcmp(key, "heartbeat") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->heartbeat = (uint16_t)v;
    } else if (strcmp(key, "consumer_timeout") == 0) {
        if (parse_uint(key, value, UINT32_MAX, &v))
            return -1;
        s->consumer_timeout_ms = v;
    } else if (strcmp(key, "handshake_timeout") == 0) {
        if (parse_uint(key, value, 3600000, &v))
            return -1;
        s->handshake_timeout_ms = (uint32_t)v;
    } else if (strcmp(key, "max_message_size") == 0) {
        if (parse_uint(key, value, 512ull * 1024 * 1024, &v))
            return -1;
        s->max_message_size = v;
    } else if (strcmp(key, "memory_high_watermark") == 0) {
        if (parse_uint(key, value, UINT64_MAX, &v))
            return -1;
        s->memory_high_watermark = v;
    } else if (strcmp(key, "disk_free_limit") == 0) {
        if (parse_uint(key, value, UINT64_MAX, &v) || v == 0) {
            fprintf(stderr, "warren: disk_free_limit must be a positive number of bytes\n");
            return -1;
        }
        s->disk_free_limit = v;
    } else if (strcmp(key, "segment_bytes") == 0) {
        if (parse_uint(key, value, 1ull << 40, &v) || v < 64 * 1024) {
            fprintf(stderr, "warren: segment_bytes must be at least 65536\n");
            return -1;
        }
        s->segment_bytes = v;
    } else if (strcmp(key, "queue_ram_messages") == 0) {
        if (parse_uint(key, value, UINT32_MAX, &v))
            return -1;
        s->queue_ram_messages = (uint32_t)v;
    } else if (strcmp(key, "queue_ram_bytes") == 0) {
        if (parse_uint(key, value, UINT64_MAX, &v))
            return -1;
        s->queue_ram_bytes = v;
    } else if (strcmp(key, "flow_queue_bytes") == 0) {
        if (parse_uint(key, value, UINT64_MAX, &v))
            return -1;
        s->flow_queue_bytes = v;
    } else if (strcmp(key, "collect_statistics_interval") == 0) {
        if (parse_uint(key, value, 3600 * 1000, &v) || v < 100) {
            fprintf(stderr, "warren: collect_statistics_interval is in ms, at least 100\n");
            return -1;
        }
        s->stats_interval_ms = (uint32_t)v;
    } else if (strcmp(key, "plain_listener") == 0) {
        return parse_bool(key, value, &s->plain_listener);
    } else if (strcmp(key, "tls_port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->tls_port = (int32_t)v;
    } else if (strcmp(key, "management_tls_port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        s->management_tls_port = (int32_t)v;
    } else if (strcmp(key, "tls_certfile") == 0) {
        s->tls.certfile = *value ? value : NULL;
    } else if (strcmp(key, "tls_keyfile") == 0) {
        s->tls.keyfile = *value ? value : NULL;
    } else if (strcmp(key, "tls_cacertfile") == 0) {
        s->tls.cacertfile = *value ? value : NULL;
    } else if (strcmp(key, "tls_verify_peer") == 0) {
        return parse_bool(key, value, &s->tls.verify_peer);
    } else if (strcmp(key, "tls_fail_if_no_peer_cert") == 0) {
        return parse_bool(key, value, &s->tls.fail_if_no_peer_cert);
    } else if (strcmp(key, "tls_versions") == 0) {
        if (tls_parse_versions(value, &s->tls.versions) != 0) {
            fprintf(stderr, "warren: tls_versions takes tlsv1.2 and/or tlsv1.3 (older versions are refused)\n");
            return -1;
        }
    } else if (strcmp(key, "tls_ciphers") == 0) {
        s->tls.ciphers = *value ? value : NULL;
    } else if (strcmp(key, "tls_handshake_timeout") == 0) {
        if (parse_uint(key, value, 3600000, &v) || v < 100) {
            fprintf(stderr, "warren: tls_handshake_timeout is in ms, at least 100\n");
            return -1;
        }
        s->tls.handshake_timeout_ms = (uint32_t)v;
    } else if (strcmp(key, "tls_cert_login_from") == 0) {
        if (strcmp(value, "common_name") == 0)
            s->tls.login_from = TLS_LOGIN_COMMON_NAME;
        else if (strcmp(value, "subject_alternative_name") == 0 || strcmp(value, "subject_alt_name") == 0)
            s->tls.login_from = TLS_LOGIN_SUBJECT_ALT_NAME;
        else if (strcmp(value, "distinguished_name") == 0)
            s->tls.login_from = TLS_LOGIN_DISTINGUISHED_NAME;
        else {
            fprintf(stderr, "warren: tls_cert_login_from is common_name, subject_alternative_name or "
                            "distinguished_name\n");
            return -1;
        }
    } else if (strcmp(key, "node_name") == 0) {
        cfg->server.cluster.node_name = *value ? value : NULL;
    } else if (strcmp(key, "cluster_port") == 0) {
        if (parse_uint(key, value, 65535, &v))
            return -1;
        cfg->server.cluster.port = (uint16_t)v;
    } else if (strcmp(key, "cluster_peers") == 0) {
        cfg->server.cluster.peers = *value ? value : NULL;
    } else if (strcmp(key, "cluster_address") == 0) {
        cfg->server.cluster.address = *value ? value : NULL;
    } else if (strcmp(key, "cluster_secret_file") == 0) {
        cfg->server.cluster.secret_file = *value ? value : NULL;
    } else if (strcmp(key, "cluster_election_timeout_ms") == 0) {
        if (parse_uint(key, value, 600000, &v) || v < 50) {
            fprintf(stderr, "warren: cluster_election_timeout_ms must be between 50 and 600000\n");
            return -1;
        }
        cfg->server.cluster.election_timeout_ms = (uint32_t)v;
    } else if (strcmp(key, "cluster_propose_timeout_ms") == 0) {
        if (parse_uint(key, value, 3600000, &v) || v < 100) {
            fprintf(stderr, "warren: cluster_propose_timeout_ms must be between 100 and 3600000\n");
            return -1;
        }
        cfg->server.cluster.propose_timeout_ms = (uint32_t)v;
    } else if (strcmp(key, "cluster_snapshot_log_bytes") == 0) {
        if (parse_uint(key, value, UINT64_C(1) << 32, &v) || v < 4096) {
            fprintf(stderr, "warren: cluster_snapshot_log_bytes must be between 4096 and 4294967296\n");
            return -1;
        }
        cfg->server.cluster.snapshot_log_bytes = v;
    } else if (strcmp(key, "default_user") == 0) {
        s->default_user = value;
    } else if (strcmp(key, "default_pass") == 0) {
        s->default_pass = value;
    } else if (strcmp(key, "loopback_only") == 0) {
        s->default_user_loopback_only = strcmp(value, "false") != 0;
    } else {
        fprintf(stderr, "warren: unknown setting '%s'\n", key);
        return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static int read_file(struct config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "warren: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *text = trim(line);
        if (*text == '\0')
            continue;
        char *eq = strchr(text, '=');
        if (!eq) {
            fprintf(stderr, "warren: %s:%d: expected 'key = value'\n", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        const char *name = trim(text);
        if (strcmp(name, RECOVER_KEY) == 0) {
            fprintf(stderr, "warren: %s:%d: cluster_recover is given on the command line, once, never in a file\n",
                    path, lineno);
            rc = -1;
            break;
        }
        rc = apply(cfg, name, trim(eq + 1), 1);
        if (rc)
            fprintf(stderr, "warren: in %s line %d\n", path, lineno);
    }
    fclose(f);
    return rc;
}

int config_parse(struct config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    server_config_defaults(&cfg->server);
    cfg->log_level = LOG_INFO;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && read_file(cfg, argv[i + 1]) != 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("warren %s\n", WARREN_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "warren: unexpected argument '%s'\n%s", arg, usage);
            return -1;
        }
        const char *value = argv[++i];
        if (strcmp(arg, "--config") == 0)
            continue;
        if (strncmp(arg, "--", 2) == 0 && strcmp(arg + 2, RECOVER_KEY) == 0) {
            /* Rewrites the cluster's configuration in the log: safe once, on one stopped
             * survivor (docs/cluster.md), never at every start: not a setting of the file. */
            cfg->server.cluster.recover = *value ? value : NULL;
            continue;
        }
        if (apply(cfg, arg + 2, value, 0) != 0)
            return -1;
    }
    return 0;
}

int config_cluster_address(const struct cluster_settings *cs, char *out, size_t cap)
{
    const char *peers = cs->peers ? cs->peers : "";
    size_t matches = 0;
    char port[8];
    snprintf(port, sizeof port, "%u", cs->port);
    out[0] = '\0';
    for (const char *at = peers; *at;) {
        size_t len = strcspn(at, ",");
        const char *entry = at;
        at += len + (at[len] == ',');
        while (len && (*entry == ' ' || *entry == '\t'))
            entry++, len--;
        while (len && (entry[len - 1] == ' ' || entry[len - 1] == '\t'))
            len--;
        const char *colon = len ? memrchr(entry, ':', len) : NULL;
        if (!colon) {
            if (len) {
                snprintf(out, cap, "cluster_peers entry '%.*s' is not host:port", (int)len, entry);
                return -1;
            }
            continue;
        }
        bool wanted = cs->address ? strlen(cs->address) == len && memcmp(cs->address, entry, len) == 0
                                  : (size_t)(entry + len - colon - 1) == strlen(port) &&
                                        memcmp(colon + 1, port, strlen(port)) == 0;
        if (!wanted)
            continue;
        if (len >= cap) {
            snprintf(out, cap, "cluster_peers entry too long");
            return -1;
        }
        if (matches++ == 0) {
            memcpy(out, entry, len);
            out[len] = '\0';
        }
    }
    if (matches == 1)
        return 0;
    if (cs->address && matches == 0) {
        /* Not a founding member: a node that joins a running cluster (cluster_node.h). */
        if (strlen(cs->address) >= cap) {
            snprintf(out, cap, "cluster_address too long");
            return -1;
        }
        snprintf(out, cap, "%s", cs->address);
        return 0;
    }
    if (matches == 0)
        snprintf(out, cap, "no entry of cluster_peers has port %u (cluster_port): set cluster_address (this "
                 "node's host:port; a node that joins a running cluster is not among cluster_peers)", cs->port);
    else
        snprintf(out, cap, "several entries of cluster_peers have port %u (cluster_port): set cluster_address",
                 cs->port);
    return -1;
}

void config_free(struct config *cfg)
{
    for (int i = 0; i < cfg->owned_count; i++)
        free(cfg->owned[i]);
    cfg->owned_count = 0;
}
