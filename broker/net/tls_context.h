/* broker/net/tls_context.h: TLS settings and the credentials loaded from them (GnuTLS): the
 * server certificate and key, the CA bundle that client certificates are verified against, and
 * the protocol/cipher priorities. One library serves both TLS listeners: libmicrohttpd is built
 * on GnuTLS, so the management port's HTTPS uses the same PEM text (tls_context_cert_pem).
 *
 * A context is immutable once loaded and reference-counted: a reload builds a new one for new
 * connections while sessions still open keep the old one alive. Single-threaded. */
#ifndef WARREN_TLS_CONTEXT_H
#define WARREN_TLS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which part of a verified client certificate names the user (RabbitMQ's ssl_cert_login_from). */
enum tls_login_from {
    TLS_LOGIN_COMMON_NAME = 0,          /* the subject's CN (the default) */
    TLS_LOGIN_SUBJECT_ALT_NAME,         /* the first DNS, e-mail or URI subject alternative name */
    TLS_LOGIN_DISTINGUISHED_NAME,       /* the whole subject DN as RFC 4514 text */
};

/* Protocol versions a listener accepts (TLS 1.2 and 1.3 only; older ones are never offered). */
enum {
    TLS_VERSION_12 = 1,
    TLS_VERSION_13 = 2,
};

/* Settings as read from the configuration (strings borrowed). All zero: TLS is off. */
struct tls_settings {
    const char *certfile;   /* PEM server certificate (chain); NULL: no TLS listener */
    const char *keyfile;    /* PEM private key */
    const char *cacertfile; /* PEM CA bundle for client certificates; NULL: none */
    bool verify_peer;       /* ask for a client certificate and verify one that is sent */
    bool fail_if_no_peer_cert; /* with verify_peer: refuse clients that send none */
    unsigned versions;      /* TLS_VERSION_* bits; 0 means both */
    const char *ciphers;    /* a GnuTLS priority fragment appended to the base string, or NULL */
    enum tls_login_from login_from;
    uint32_t handshake_timeout_ms; /* a handshake not finished by then is cut: 5000 */
};

struct tls_context;

/* Parses a tls_versions value ("tlsv1.2,tlsv1.3", also "1.2" or "tls1.3") into TLS_VERSION_*
 * bits. Returns 0, or -1 for an unknown or refused (older than 1.2) version. */
int tls_parse_versions(const char *text, unsigned *out);

/* Reads the files named by s and builds a context with one reference. Returns 0 and *out, or
 * a negative status after writing a one-line reason into err[0..cap). */
int tls_context_load(const struct tls_settings *s, struct tls_context **out, char *err, size_t cap);
/* Takes one more reference; returns ctx. */
struct tls_context *tls_context_ref(struct tls_context *ctx);
/* Drops one reference, freeing ctx with the last one. NULL is ignored. */
void tls_context_unref(struct tls_context *ctx);

/* The settings the context was loaded from (strings borrowed from the caller's settings). */
const struct tls_settings *tls_context_settings(const struct tls_context *ctx);
/* The PEM text of the certificate chain and of the key, NUL-terminated, valid while ctx is. */
const char *tls_context_cert_pem(const struct tls_context *ctx);
const char *tls_context_key_pem(const struct tls_context *ctx);
/* The priority string built from versions and ciphers (for libmicrohttpd). */
const char *tls_context_priority(const struct tls_context *ctx);

/* For transport_tls.c: the GnuTLS credentials and priority cache (opaque pointers here so that
 * this header needs no GnuTLS include). */
void *tls_context_credentials(const struct tls_context *ctx);
void *tls_context_priority_cache(const struct tls_context *ctx);

#endif
