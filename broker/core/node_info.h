/* broker/core/node_info.h: the broker process as the operating system sees it, and the node
 * identity every door reports (the management API's /api/nodes, the Prometheus endpoint, and a
 * cluster's members to each other: introspect.h's nodes): node name, resident memory, file
 * descriptors, free disk space, start time. */
#ifndef WARREN_NODE_INFO_H
#define WARREN_NODE_INFO_H

#include <stdbool.h>
#include <stdint.h>

/* The RabbitMQ release whose management API and metrics Warren answers as (tools check it). */
#define NODE_INFO_RABBITMQ_VERSION "3.10.8"

/* The node's name: the configured node_name (node_info_set_name), else "warren@<short hostname>"
 * (RabbitMQ's nodes are "rabbit@<hostname>"); a static string. It is also the cluster name the
 * HTTP doors report. */
const char *node_info_name(void);
/* Sets the name node_info_name reports (the node_name key), before either door starts. */
void node_info_set_name(const char *name);

/* Resident memory of the process in bytes (/proc/self/statm); false when unreadable. */
bool node_info_resident_bytes(uint64_t *out);

/* File descriptors the process holds open (/proc/self/fd); false when unreadable. */
bool node_info_open_fds(uint64_t *out);

/* The soft limit on open file descriptors (RLIMIT_NOFILE); false when unknown or unlimited. */
bool node_info_fd_limit(uint64_t *out);

/* Bytes available to the broker on the filesystem holding dir (statvfs); false on error. */
bool node_info_disk_free(const char *dir, uint64_t *out);

/* When the process started, in seconds since the epoch (/proc/self/stat and the boot time in
 * /proc/stat); false when unreadable. */
bool node_info_start_time(double *out);

#endif
