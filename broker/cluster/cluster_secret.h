/* broker/cluster/cluster_secret.h: the cluster's shared secret (docs/cluster.md, "Authentication"),
 * RabbitMQ's Erlang cookie for Warren: every member reads the same bytes from a file that only its
 * owner may read, and proves it knows them on each cluster connection (cluster_link.h) without
 * ever sending them. */
#ifndef WARREN_CLUSTER_SECRET_H
#define WARREN_CLUSTER_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_SECRET_MIN 16   /* bytes, after the trailing newline is stripped */
#define CLUSTER_SECRET_MAX 4096 /* bytes of the file */

/* Reads the secret from path into out[0..cap) and its length into *len: the file's bytes with
 * trailing CR and LF removed. Refuses (-1, a message in err, out wiped) a file that is missing,
 * not a regular file (a symbolic link to one is followed), readable or writable by group or
 * others, empty, longer than CLUSTER_SECRET_MAX or cap, or shorter than CLUSTER_SECRET_MIN.
 * 0 on success. */
int cluster_secret_load(const char *path, uint8_t *out, size_t cap, size_t *len, char *err, size_t errlen);

#endif
