/* broker/main.c: the warren executable: parse configuration, run the event loop, shut down
 * cleanly on SIGTERM, SIGINT or `warrenctl stop`, reload the TLS certificate files on SIGHUP or
 * `warrenctl reload_tls`. Under systemd (Type=notify) it reports READY=1 once the AMQP port and
 * the admin socket accept, and STOPPING=1 when shutdown begins. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_queues.h"
#include "cluster_secret.h"
#include "cluster_target.h"
#endif
#include "config.h"
#include "event_loop.h"
#include "http_server.h"
#include "log.h"
#include "mgmt.h"
#include "node_info.h"
#include "prometheus.h"
#include "server.h"
#include "service_notify.h"

static struct event_loop *main_loop;
static volatile sig_atomic_t stop_requested;

static void on_signal(int signo)
{
    (void)signo;
    stop_requested = 1;
    if (main_loop)
        loop_stop(main_loop);
}

/* warrenctl stop: the same path as SIGTERM; a second request while stopping changes nothing. */
static void on_admin_stop(void *data)
{
    (void)data;
    if (stop_requested)
        return;
    stop_requested = 1;
    loop_stop(main_loop);
}

/* What a TLS reload touches besides the AMQPS listener (server_reload_tls does that one). */
struct tls_reload {
    struct server *server;
    struct http_server *management_tls;
    int signal_fd; /* SIGHUP as a readable fd, so the reload runs inside the loop */
};

/* After server_reload_tls succeeded: the HTTPS management listener takes the new files too. */
static void on_admin_reload_tls(void *data)
{
    struct tls_reload *reload = data;
    if (reload->management_tls)
        http_set_tls(reload->management_tls, server_tls_context(reload->server));
}

/* SIGHUP: the same as `warrenctl reload_tls` (a failure is logged; the old files stay). */
static void on_sighup(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)mask;
    struct signalfd_siginfo info;
    while (read(fd, &info, sizeof info) == (ssize_t)sizeof info) {
    }
    char err[512];
    log_info("SIGHUP: reloading the TLS certificate files");
    if (server_reload_tls(((struct tls_reload *)data)->server, err, sizeof err) == 0)
        on_admin_reload_tls(data);
    else
        log_warning("SIGHUP: %s", err);
}

/* Routes SIGHUP (blocked since the start of main) to a signalfd watched by the loop; without
 * TLS it stays blocked, i.e. ignored. Returns the fd or -1. */
static int watch_sighup(struct event_loop *loop, struct tls_reload *reload)
{
    if (!server_tls_context(reload->server))
        return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd >= 0 && loop_watch(loop, fd, LOOP_READABLE, on_sighup, reload) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int ensure_data_dir(const char *path)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST)
        return 0;
    log_error("cannot create data directory %s: %s", path, strerror(errno));
    return -1;
}

/* The cluster keys make sense together: checked before anything starts. Returns 0 or -1
 * (logged). address receives this node's entry of cluster_peers. */
static int check_cluster_settings(const struct cluster_settings *cs, char *address, size_t cap)
{
    if (cs->port == 0) {
        if (cs->peers || cs->address || cs->secret_file)
            log_error("cluster_peers, cluster_address or cluster_secret_file is set but cluster_port is 0 (no "
                      "cluster): set cluster_port");
        return cs->peers || cs->address || cs->secret_file ? -1 : 0;
    }
#ifndef WARREN_HAVE_CLUSTER
    (void)address;
    (void)cap;
    log_error("cluster_port is set, but this warren was built without clustering "
              "(building it needs libraft-dev and libuv1-dev)");
    return -1;
#else
    if (!cs->peers) {
        log_error("cluster_port is set but cluster_peers is not: list every founding member's host:port, this one "
                  "included (a node that joins a running cluster: some members', and set cluster_address)");
        return -1;
    }
    if (!cs->secret_file) {
        log_error("cluster_port is set but cluster_secret_file is not: every member needs the same secret "
                  "(docs/cluster.md, Authentication)");
        return -1;
    }
    if (config_cluster_address(cs, address, cap) != 0) {
        log_error("%s", address);
        return -1;
    }
    return 0;
#endif
}

#ifdef WARREN_HAVE_CLUSTER
/* Everything the node borrows for its lifetime. */
struct cluster_run {
    struct cluster_target target;
    char node_name[300], dir[4096];
    uint8_t secret[CLUSTER_SECRET_MAX]; /* wiped once the node holds its own copy */
};

/* Starts the cluster node once the store is open (the saved index is known). NULL: logged. */
static struct cluster_node *start_cluster(struct event_loop *loop, struct server *server, const struct config *cfg,
                                          const char *address, struct cluster_run *run)
{
    const struct cluster_settings *cs = &cfg->server.cluster;
    snprintf(run->node_name, sizeof run->node_name, "%s", node_info_name()); /* node_name, or the default */
    snprintf(run->dir, sizeof run->dir, "%s/cluster", cfg->server.data_dir);
    cluster_target_init(&run->target, server);
    char err[512] = "";
    size_t secret_len = 0;
    if (cluster_secret_load(cs->secret_file, run->secret, sizeof run->secret, &secret_len, err, sizeof err) != 0) {
        log_error("cluster_secret_file: %s", err);
        return NULL;
    }
    struct cluster_config ccfg = {
        .node_name = run->node_name,
        .address = address,
        .peers = cs->peers,
        .dir = run->dir,
        .listen_port = cs->port, /* the same as address's port unless it is forwarded */
        .election_timeout_ms = cs->election_timeout_ms,
        .propose_timeout_ms = cs->propose_timeout_ms,
        .snapshot_log_bytes = cs->snapshot_log_bytes,
        .recover = cs->recover,
        .secret = run->secret,
        .secret_len = secret_len,
    };
    struct cluster_node *node = cluster_node_start(loop, &ccfg, &run->target, err, sizeof err);
    explicit_bzero(run->secret, sizeof run->secret);
    if (!node) {
        log_error("cannot start the cluster node: %s", err);
        return NULL;
    }
    log_info("cluster: node %s at %s (listening on port %u), peers %s, resuming after log index %llu", run->node_name,
             address, cs->port, cs->peers, (unsigned long long)run->target.start_index);
    return node;
}
#endif

int main(int argc, char **argv)
{
    /* First of all: a SIGTERM that arrives while the broker starts (a service manager stopping
     * it, a test that saw the port accept) must be a clean shutdown, not the default action.
     * A stop requested before loop_run still counts (event_loop.c). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* SIGHUP (reload the TLS files) is read from a signalfd by the loop: blocked here, before
     * any thread exists, so that no thread ever takes its default action (termination). */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, NULL);
    struct config cfg;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0) {
        config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    log_set_level(cfg.log_level);
    if (cfg.server.cluster.node_name)
        node_info_set_name(cfg.server.cluster.node_name);
    signal(SIGPIPE, SIG_IGN);
    char cluster_address[256];
    if (check_cluster_settings(&cfg.server.cluster, cluster_address, sizeof cluster_address) != 0) {
        config_free(&cfg);
        return 1;
    }
    if (ensure_data_dir(cfg.server.data_dir) != 0) {
        config_free(&cfg);
        return 1;
    }
    main_loop = loop_create();
    if (!main_loop) {
        log_error("cannot create the event loop: %s", strerror(errno));
        config_free(&cfg);
        return 1;
    }
    if (stop_requested) /* a signal before the loop existed */
        loop_stop(main_loop);
    struct server *server = server_create(main_loop, &cfg.server);
    if (!server) {
        loop_destroy(main_loop);
        config_free(&cfg);
        return 1;
    }
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_run cluster_run;
    struct cluster_node *cluster = NULL;
    if (cfg.server.cluster.port) {
        /* The quorum queues' registry exists before the node, which imports its snapshot. */
        struct cluster_queues *replicas = cluster_queues_create(server);
        server_set_cluster_queues(server, replicas);
        cluster = replicas ? start_cluster(main_loop, server, &cfg, cluster_address, &cluster_run) : NULL;
        if (!cluster) {
            server_destroy(server);
            loop_destroy(main_loop);
            config_free(&cfg);
            return 1;
        }
        server_set_cluster(server, cluster);
        /* A member silent for three election timeouts is down for the quorum queues. */
        cluster_queues_start(replicas, cluster, 3 * cfg.server.cluster.election_timeout_ms);
        server_cluster_catch_up(server);
    }
#endif
    struct admin *admin = admin_open(main_loop, server, NULL); /* <data-dir>/warren.sock */
    if (!admin) {
#ifdef WARREN_HAVE_CLUSTER
        server_set_cluster(server, NULL);
        cluster_node_stop(cluster);
        if (cluster)
            cluster_queues_start(server_cluster_queues(server), NULL, 0);
#endif
        server_destroy(server);
        loop_destroy(main_loop);
        config_free(&cfg);
        return 1;
    }
    admin_set_stop_handler(admin, on_admin_stop, NULL);
    /* The management API: the same resources as the admin socket, over HTTP. A port that
     * cannot be bound stops start-up, as it stops RabbitMQ's. */
    struct mgmt *mgmt = mgmt_create(server);
    struct http_server *management = NULL;
    if (mgmt && cfg.server.management_port)
        management = http_open(main_loop, "management", cfg.server.bind_address, cfg.server.management_port, NULL,
                               MGMT_MAX_BODY, mgmt_http_handler, mgmt_http_admit, mgmt);
    bool listening = mgmt && (!cfg.server.management_port || management);
    /* HTTPS for the same API when a certificate is configured: 15671 unless set (0: off). */
    struct tls_reload reload = {.server = server, .signal_fd = -1};
    struct tls_context *tls = server_tls_context(server);
    uint16_t https_port = server_management_tls_port(server);
    if (listening && tls && https_port) {
        reload.management_tls = http_open(main_loop, "management", cfg.server.bind_address, https_port,
                                          tls, MGMT_MAX_BODY, mgmt_http_handler, mgmt_http_admit, mgmt);
        listening = reload.management_tls != NULL;
    }
    /* The Prometheus endpoint reads the broker directly (no router, no authentication). */
    struct http_server *metrics = NULL;
    if (listening && cfg.server.prometheus_port) {
        metrics = http_open(main_loop, "prometheus", cfg.server.bind_address, cfg.server.prometheus_port, NULL,
                            PROMETHEUS_MAX_BODY, prometheus_http_handler, NULL, server);
        listening = metrics != NULL;
    }
    if (!listening) {
        http_close(reload.management_tls);
        http_close(management);
        admin_close(admin);
        mgmt_destroy(mgmt);
#ifdef WARREN_HAVE_CLUSTER
        server_set_cluster(server, NULL);
        cluster_node_stop(cluster);
        if (cluster)
            cluster_queues_start(server_cluster_queues(server), NULL, 0);
#endif
        server_destroy(server);
        loop_destroy(main_loop);
        config_free(&cfg);
        return 1;
    }
    admin_set_reload_tls_handler(admin, on_admin_reload_tls, &reload);
    reload.signal_fd = watch_sighup(main_loop, &reload);
    log_info("Warren %s started (data in %s)", WARREN_VERSION, cfg.server.data_dir);
    /* The listener and the admin socket are bound and listening: connections made from now on
     * are queued by the kernel and served by the loop. */
    if (service_notify("READY=1") < 0)
        log_warning("cannot notify the service manager ($NOTIFY_SOCKET) of start-up");

    rc = loop_run(main_loop);
    if (stop_requested) {
        service_notify("STOPPING=1");
        server_shutdown(server);
        rc = loop_run(main_loop);
    }
    if (reload.signal_fd >= 0) {
        loop_unwatch(main_loop, reload.signal_fd);
        close(reload.signal_fd);
    }
    http_close(metrics);
    http_close(reload.management_tls);
    http_close(management);
    mgmt_destroy(mgmt);
    admin_close(admin);
#ifdef WARREN_HAVE_CLUSTER
    /* Pending proposals complete with -ECANCELED here, while their connections still exist. */
    cluster_node_stop(cluster);
    server_set_cluster(server, NULL);
    if (cluster)
        cluster_queues_start(server_cluster_queues(server), NULL, 0);
#endif
    server_destroy(server);
    loop_destroy(main_loop);
    log_info("stopped");
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
