/* broker/core/service_notify.h: tell the service manager (systemd, Type=notify) about start-up
 * and shutdown, the sd_notify(3) protocol without libsystemd. */
#ifndef WARREN_SERVICE_NOTIFY_H
#define WARREN_SERVICE_NOTIFY_H

/* Sends state (e.g. "READY=1", "STOPPING=1") as one datagram to the Unix socket named by
 * $NOTIFY_SOCKET: a path, or an abstract name when it starts with '@'. Returns 1 when sent, 0
 * when $NOTIFY_SOCKET is unset (not run by a service manager), or -errno. */
int service_notify(const char *state);

#endif
