/* broker/admin/admin.h: the admin socket warrenctl talks to: a Unix stream socket served from
 * the broker's event loop, and a second door onto the management API (mgmt.h). Each client
 * sends one JSON request line (optionally followed by the request body it announces) and gets
 * one JSON document back, then the socket is closed. The request format is in admin_commands.c,
 * the commands in admin_commands.c, admin_api.c and admin_lists.c and docs/operations.md. */
#ifndef WARREN_ADMIN_H
#define WARREN_ADMIN_H

struct admin;
struct event_loop;
struct server;

/* Limits: a request line longer than this is refused (a body after it may be as long as
 * ADMIN_MAX_BODY: warrenctl import_definitions of a large broker); a client that has not finished sending its request (or reading the answer)
 * within the timeout is disconnected. */
#define ADMIN_MAX_REQUEST 65536
#define ADMIN_MAX_BODY (64u * 1024 * 1024)
#define ADMIN_CLIENT_TIMEOUT_MS 5000
#define ADMIN_MAX_CLIENTS 64

/* Creates the socket at socket_path (NULL: "<data_dir>/warren.sock" from the server's config)
 * with mode 0600, replacing a stale socket left by a previous run but refusing to replace one a
 * live process still answers on, or a file that is not a socket. Returns NULL after logging why. */
struct admin *admin_open(struct event_loop *loop, struct server *server, const char *socket_path);

/* Sets what `warrenctl stop` does: stop(data) is called once the answer is queued, from the
 * loop; it should start the same clean shutdown as SIGTERM. Without one, stop is refused. */
void admin_set_stop_handler(struct admin *admin, void (*stop)(void *data), void *data);
/* Sets what `warrenctl reload_tls` does besides reloading the AMQPS listener's files (main.c:
 * the HTTPS management listener). reload(data) runs from the loop; NULL: nothing more. */
void admin_set_reload_tls_handler(struct admin *admin, void (*reload)(void *data), void *data);

/* Disconnects every admin client, closes and removes the socket, frees admin (NULL is a no-op).
 * Call before the loop and the server are destroyed. */
void admin_close(struct admin *admin);

#endif
