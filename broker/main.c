/* broker/main.c: the warren executable: parse configuration, run the event loop, shut down
 * cleanly on SIGTERM, SIGINT or `warrenctl stop`. Under systemd (Type=notify) it reports
 * READY=1 once the AMQP port and the admin socket accept, and STOPPING=1 when shutdown begins. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.h"
#include "config.h"
#include "event_loop.h"
#include "http_server.h"
#include "log.h"
#include "mgmt.h"
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

static int ensure_data_dir(const char *path)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST)
        return 0;
    log_error("cannot create data directory %s: %s", path, strerror(errno));
    return -1;
}

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
    struct config cfg;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0) {
        config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
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
    struct admin *admin = admin_open(main_loop, server, NULL); /* <data-dir>/warren.sock */
    if (!admin) {
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
        management = http_open(main_loop, "management", cfg.server.bind_address, cfg.server.management_port,
                               MGMT_MAX_BODY, mgmt_http_handler, mgmt_http_admit, mgmt);
    bool listening = mgmt && (!cfg.server.management_port || management);
    /* The Prometheus endpoint reads the broker directly (no router, no authentication). */
    struct http_server *metrics = NULL;
    if (listening && cfg.server.prometheus_port) {
        metrics = http_open(main_loop, "prometheus", cfg.server.bind_address, cfg.server.prometheus_port,
                            PROMETHEUS_MAX_BODY, prometheus_http_handler, NULL, server);
        listening = metrics != NULL;
    }
    if (!listening) {
        http_close(management);
        admin_close(admin);
        mgmt_destroy(mgmt);
        server_destroy(server);
        loop_destroy(main_loop);
        config_free(&cfg);
        return 1;
    }
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
    http_close(metrics);
    http_close(management);
    mgmt_destroy(mgmt);
    admin_close(admin);
    server_destroy(server);
    loop_destroy(main_loop);
    log_info("stopped");
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
