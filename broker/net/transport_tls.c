/* broker/net/transport_tls.c: TLS on a netconn (GnuTLS), server side: the non-blocking
 * handshake driven by the connection's socket events and cut by a loop timer, the client
 * certificate checks, the identity taken from a verified certificate, and record I/O.
 * A refused peer gets a fatal alert and a graceful close; one that stays silent is cut by the
 * handshake timer.
 *
 * Writing: each send call seals one record of up to TLS_RECORD bytes. Several small queued
 * slices (frames) are copied into one shared staging buffer first, so a flush of many frames
 * is few records and few syscalls, and an idle connection holds no staging memory. When the
 * socket is full GnuTLS keeps the sealed record and wants the same call again: `inflight`
 * remembers its length, and the output queue still holds those bytes until they are sent.
 *
 * Reading: GnuTLS reads records from the socket through pull_bytes, asking for a record's
 * 5-byte header and then for its body. A client that writes one small record per frame would
 * cost two recv calls per frame, so pull_bytes reads ahead: one recv into a shared buffer takes
 * whatever the socket holds, GnuTLS gets what it asked for, and the rest is kept on the session
 * (`ahead`, allocated only while it holds bytes) for the next calls. Bytes kept there or a
 * record bigger than the room left in the input buffer, partly inside GnuTLS, make
 * transport_ops.buffered true, and netconn.c comes back for them without waiting for the
 * socket to become readable. A read ahead that did not fill the shared buffer emptied the
 * socket, so once its bytes are used up the next pull answers EAGAIN without asking the kernel
 * (as a short read ends plain TCP's reading): bytes that arrived since make the level-triggered
 * socket readable again. */
#include "event_loop.h"
#include "log.h"
#include "net_private.h"
#include "tls_context.h"
#include "transport.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TLS_RECORD 16384 /* the largest plaintext of one record */

struct tls_session {
    gnutls_session_t session;
    struct tls_context *ctx;
    transport_ready_fn ready;
    void *arg;
    size_t inflight; /* length of a record offered but not yet fully sent */
    uint8_t *ahead;  /* bytes read from the socket that GnuTLS has not asked for yet, or NULL */
    size_t ahead_start, ahead_end;
    bool drained;    /* the last read ahead emptied the socket: the next pull without `ahead` is EAGAIN */
    char *identity;  /* the user named by a verified client certificate, or NULL */
    bool established;
};

/* Shared by every connection of the process: filled and sealed within one send call. */
static uint8_t staging[TLS_RECORD];
/* Shared likewise: one read ahead, emptied into GnuTLS and the session's `ahead` at once. */
static uint8_t readahead[4 * TLS_RECORD];

/* ---- the socket under GnuTLS ---- */

static ssize_t pull_bytes(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct netconn *conn = ptr;
    struct tls_session *t = conn->tls;
    if (t->ahead) {
        size_t n = t->ahead_end - t->ahead_start < len ? t->ahead_end - t->ahead_start : len;
        memcpy(buf, t->ahead + t->ahead_start, n);
        t->ahead_start += n;
        if (t->ahead_start == t->ahead_end) {
            free(t->ahead);
            t->ahead = NULL;
        }
        return (ssize_t)n;
    }
    if (t->drained) {
        t->drained = false;
        gnutls_transport_set_errno(t->session, EAGAIN);
        return -1;
    }
    bool direct = len >= sizeof readahead; /* a big request needs no read ahead */
    ssize_t n = recv(conn->fd, direct ? buf : readahead, direct ? len : sizeof readahead, 0);
    if (n < 0) {
        gnutls_transport_set_errno(t->session, errno == EWOULDBLOCK ? EAGAIN : errno);
        return -1;
    }
    if (n == 0)
        return 0;
    conn->io.recv_bytes += (uint64_t)n;
    conn->io.recv_calls++;
    if (direct)
        return n;
    t->drained = (size_t)n < sizeof readahead;
    size_t give = (size_t)n < len ? (size_t)n : len;
    memcpy(buf, readahead, give);
    if ((size_t)n > give) {
        t->ahead = malloc((size_t)n - give);
        if (!t->ahead) {
            gnutls_transport_set_errno(t->session, ENOMEM); /* the rest is lost: end the session */
            return -1;
        }
        memcpy(t->ahead, readahead + give, (size_t)n - give);
        t->ahead_start = 0;
        t->ahead_end = (size_t)n - give;
    }
    return (ssize_t)give;
}

static ssize_t push_bytes(gnutls_transport_ptr_t ptr, const giovec_t *iov, int count)
{
    struct netconn *conn = ptr;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)count};
    ssize_t n = sendmsg(conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        gnutls_transport_set_errno(conn->tls->session, errno == EWOULDBLOCK ? EAGAIN : errno);
        return -1;
    }
    conn->io.send_bytes += (uint64_t)n;
    conn->io.send_calls++;
    return n;
}

/* ---- handshake ---- */

static void on_handshake_timeout(struct event_loop *loop, void *data)
{
    (void)loop;
    struct netconn *conn = data;
    conn->handshake_timer = 0;
    log_warning("TLS handshake with %s timed out after %u ms; closing", conn->peer,
                tls_context_settings(conn->tls->ctx)->handshake_timeout_ms);
    netconn__dead(conn);
}

/* After a failed handshake or check: a graceful close (netconn.c: our FIN, then what the peer
 * still sends is read and dropped until its EOF or the linger timeout), so that the alert
 * already sent is not destroyed by a reset for unread input. */
static void close_refused(struct netconn *conn)
{
    conn->handshaking = false;
    loop_timer_cancel(conn->net->loop, conn->handshake_timer);
    conn->handshake_timer = 0;
    netconn_close(conn);
}

/* Logs why conn is refused, tells the peer with a fatal alert (best effort, non-blocking) and
 * closes it. Returns -1 for the caller to pass on. */
static int refuse(struct netconn *conn, gnutls_alert_description_t alert, const char *why)
{
    log_warning("TLS connection from %s refused: %s", conn->peer, why);
    gnutls_alert_send(conn->tls->session, GNUTLS_AL_FATAL, alert);
    close_refused(conn);
    return -1;
}

/* The user a verified certificate names, by the configured rule; NULL when it names none. */
static char *certificate_identity(gnutls_session_t session, enum tls_login_from from)
{
    unsigned count = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &count);
    gnutls_x509_crt_t crt;
    if (!certs || count == 0 || gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    char *identity = NULL;
    char buf[1024];
    size_t size = sizeof buf - 1;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
        /* unreadable: no identity */
    } else if (from == TLS_LOGIN_COMMON_NAME) {
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) == 0) {
            buf[size] = '\0';
            identity = strdup(buf);
        }
    } else if (from == TLS_LOGIN_DISTINGUISHED_NAME) {
        gnutls_datum_t dn = {0};
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            identity = strndup((const char *)dn.data, dn.size);
            gnutls_free(dn.data);
        }
    } else {
        for (unsigned i = 0; !identity; i++) {
            size = sizeof buf - 1;
            int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, NULL);
            if (type < 0)
                break;
            if (type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_RFC822NAME || type == GNUTLS_SAN_URI) {
                buf[size] = '\0';
                identity = strdup(buf);
            }
        }
    }
    gnutls_x509_crt_deinit(crt);
    return identity;
}

/* The handshake finished: applies verify_peer / fail_if_no_peer_cert. Returns 0 or -1 (refused). */
static int check_peer(struct netconn *conn)
{
    struct tls_session *t = conn->tls;
    const struct tls_settings *s = tls_context_settings(t->ctx);
    if (!s->verify_peer)
        return 0;
    unsigned count = 0;
    if (!gnutls_certificate_get_peers(t->session, &count) || count == 0) {
        if (s->fail_if_no_peer_cert)
            return refuse(conn, GNUTLS_A_CERTIFICATE_REQUIRED, "no client certificate (tls_fail_if_no_peer_cert)");
        return 0;
    }
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(t->session, &status);
    if (rc < 0)
        return refuse(conn, GNUTLS_A_BAD_CERTIFICATE, gnutls_strerror(rc));
    if (status) {
        gnutls_datum_t text = {0};
        char why[256] = "client certificate not trusted";
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
            int n = snprintf(why, sizeof why, "client certificate: %s", (const char *)text.data);
            gnutls_free(text.data);
            for (size_t end = n > 0 && (size_t)n < sizeof why ? (size_t)n : strlen(why); end && why[end - 1] == ' ';)
                why[--end] = '\0'; /* GnuTLS ends its text with a space */
        }
        gnutls_alert_description_t alert = status & GNUTLS_CERT_EXPIRED             ? GNUTLS_A_CERTIFICATE_EXPIRED
                                           : status & GNUTLS_CERT_SIGNER_NOT_FOUND ? GNUTLS_A_UNKNOWN_CA
                                                                                    : GNUTLS_A_BAD_CERTIFICATE;
        return refuse(conn, alert, why);
    }
    t->identity = certificate_identity(t->session, s->login_from);
    return 0;
}

int transport_tls_handshake(struct netconn *conn)
{
    struct tls_session *t = conn->tls;
    int rc;
    do {
        rc = gnutls_handshake(t->session);
    } while (rc < 0 && rc != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rc));
    if (rc == GNUTLS_E_AGAIN) {
        conn->handshake_wants_write = gnutls_record_get_direction(t->session) == 1;
        netconn__update_watch(conn);
        return 0;
    }
    if (rc < 0) {
        bool gone = rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PULL_ERROR || rc == GNUTLS_E_PUSH_ERROR;
        if (gone && conn->io.recv_bytes == 0) /* a port probe (load balancer, monitoring) */
            log_debug("TLS connection from %s closed before a ClientHello", conn->peer);
        else if (gone)
            log_warning("TLS handshake with %s failed: the peer closed the connection", conn->peer);
        else
            log_warning("TLS handshake with %s failed: %s", conn->peer, gnutls_strerror(rc));
        gnutls_alert_send_appropriate(t->session, rc);
        close_refused(conn);
        return -1;
    }
    if (check_peer(conn) < 0)
        return -1;
    t->established = true;
    conn->handshaking = false;
    loop_timer_cancel(conn->net->loop, conn->handshake_timer);
    conn->handshake_timer = 0;
    log_debug("TLS %s with %s, %s%s%s", gnutls_protocol_get_name(gnutls_protocol_get_version(t->session)),
              conn->peer, gnutls_cipher_get_name(gnutls_cipher_get(t->session)),
              t->identity ? ", client certificate for " : "", t->identity ? t->identity : "");
    netconn__update_watch(conn);
    /* Application data may have come with the client's last handshake flight. */
    netconn__read_soon(conn);
    if (!conn->closing)
        t->ready(conn, t->arg);
    return 0;
}

int transport_tls_start(struct netconn *conn, struct tls_context *ctx, transport_ready_fn fn, void *arg)
{
    struct tls_session *t = calloc(1, sizeof *t);
    if (!t || gnutls_init(&t->session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
        free(t);
        log_warning("dropping a TLS connection from %s: out of memory", conn->peer);
        netconn__dead(conn);
        return -ENOMEM;
    }
    const struct tls_settings *s = tls_context_settings(ctx);
    t->ctx = tls_context_ref(ctx);
    t->ready = fn;
    t->arg = arg;
    conn->tls = t;
    conn->transport = &transport_tls;
    conn->handshaking = true;
    gnutls_priority_set(t->session, tls_context_priority_cache(ctx));
    gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, tls_context_credentials(ctx));
    gnutls_certificate_server_set_request(t->session, !s->verify_peer            ? GNUTLS_CERT_IGNORE
                                                      : s->fail_if_no_peer_cert ? GNUTLS_CERT_REQUIRE
                                                                                : GNUTLS_CERT_REQUEST);
    gnutls_handshake_set_timeout(t->session, 0); /* the loop timer below is the only clock */
    gnutls_transport_set_ptr(t->session, conn);
    gnutls_transport_set_pull_function(t->session, pull_bytes);
    gnutls_transport_set_vec_push_function(t->session, push_bytes);
    uint32_t timeout = s->handshake_timeout_ms ? s->handshake_timeout_ms : 5000;
    conn->handshake_timer = loop_timer_add(conn->net->loop, timeout, on_handshake_timeout, conn);
    netconn__update_watch(conn);
    return 0;
}

/* ---- records ---- */

static ssize_t tls_recv(struct netconn *conn, void *buf, size_t len)
{
    struct tls_session *t = conn->tls;
    for (;;) {
        ssize_t n = gnutls_record_recv(t->session, buf, len);
        if (n >= 0)
            return n; /* 0: close_notify */
        if (n == GNUTLS_E_AGAIN)
            return -EAGAIN;
        if (n == GNUTLS_E_INTERRUPTED || (n != GNUTLS_E_REHANDSHAKE && !gnutls_error_is_fatal((int)n)))
            continue;
        if (n == GNUTLS_E_PREMATURE_TERMINATION)
            return 0; /* the peer closed TCP without close_notify: an end of stream all the same */
        if (n != GNUTLS_E_PULL_ERROR)
            log_warning("TLS error on the connection from %s: %s; closing", conn->peer, gnutls_strerror((int)n));
        return -EPROTO;
    }
}

static ssize_t tls_send(struct netconn *conn, const struct iovec *iov, int count)
{
    struct tls_session *t = conn->tls;
    if (!t->established)
        return -EAGAIN;
    ssize_t n;
    if (t->inflight) {
        n = gnutls_record_send(t->session, NULL, 0); /* finish the sealed record */
    } else {
        const void *data = iov[0].iov_base;
        size_t len = iov[0].iov_len;
        if (len < TLS_RECORD && count > 1) {
            len = 0;
            for (int i = 0; i < count && len < TLS_RECORD; i++) {
                size_t take = iov[i].iov_len < TLS_RECORD - len ? iov[i].iov_len : TLS_RECORD - len;
                memcpy(staging + len, iov[i].iov_base, take);
                len += take;
            }
            data = staging;
        } else if (len > TLS_RECORD) {
            len = TLS_RECORD;
        }
        n = gnutls_record_send(t->session, data, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            t->inflight = len;
    }
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
        return -EAGAIN;
    t->inflight = 0;
    if (n < 0) {
        if (n != GNUTLS_E_PUSH_ERROR)
            log_warning("TLS error writing to %s: %s; closing", conn->peer, gnutls_strerror((int)n));
        return -EPIPE;
    }
    return n;
}

static bool tls_buffered(const struct netconn *conn)
{
    return conn->tls->established && (conn->tls->ahead || gnutls_record_check_pending(conn->tls->session) > 0);
}

static void tls_shutdown(struct netconn *conn)
{
    if (conn->tls->established && !conn->tls->inflight)
        gnutls_bye(conn->tls->session, GNUTLS_SHUT_WR); /* best effort: not retried when full */
}

static void tls_release(struct netconn *conn)
{
    struct tls_session *t = conn->tls;
    if (!t)
        return;
    gnutls_deinit(t->session);
    free(t->ahead);
    tls_context_unref(t->ctx);
    free(t->identity);
    free(t);
    conn->tls = NULL;
}

const char *netconn_peer_identity(const struct netconn *conn)
{
    if (conn->identity)
        return conn->identity;
    return conn->tls && conn->tls->established ? conn->tls->identity : NULL;
}

/* "AES-256-GCM" -> "aes_256_gcm", as RabbitMQ names ciphers; NULL -> "". */
static void rabbit_name(const char *gnutls_name, char *out, size_t cap)
{
    size_t i = 0;
    for (; gnutls_name && gnutls_name[i] && i + 1 < cap; i++) {
        char c = gnutls_name[i];
        out[i] = c == '-' ? '_' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[i] = '\0';
}

bool netconn_tls_info(const struct netconn *conn, struct netconn_tls_info *out)
{
    memset(out, 0, sizeof *out);
    if (!conn->tls || !conn->tls->established)
        return false;
    gnutls_session_t s = conn->tls->session;
    gnutls_protocol_t version = gnutls_protocol_get_version(s);
    snprintf(out->protocol, sizeof out->protocol, "%s",
             version == GNUTLS_TLS1_3 ? "tlsv1.3" : version == GNUTLS_TLS1_2 ? "tlsv1.2" : "unknown");
    rabbit_name(gnutls_cipher_get_name(gnutls_cipher_get(s)), out->cipher, sizeof out->cipher);
    gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
    if (version == GNUTLS_TLS1_3 || kx == GNUTLS_KX_UNKNOWN)
        snprintf(out->key_exchange, sizeof out->key_exchange, "any"); /* TLS 1.3 negotiates no kx suite */
    else
        rabbit_name(gnutls_kx_get_name(kx), out->key_exchange, sizeof out->key_exchange);
    rabbit_name(gnutls_mac_get_name(gnutls_mac_get(s)), out->hash, sizeof out->hash);
    unsigned count = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &count);
    gnutls_x509_crt_t crt;
    if (certs && count && gnutls_x509_crt_init(&crt) == 0) {
        gnutls_datum_t subject = {0}, issuer = {0};
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
            gnutls_x509_crt_get_dn3(crt, &subject, 0) == 0 && gnutls_x509_crt_get_issuer_dn3(crt, &issuer, 0) == 0) {
            snprintf(out->peer_subject, sizeof out->peer_subject, "%.*s", (int)subject.size, (const char *)subject.data);
            snprintf(out->peer_issuer, sizeof out->peer_issuer, "%.*s", (int)issuer.size, (const char *)issuer.data);
        }
        gnutls_free(subject.data);
        gnutls_free(issuer.data);
        gnutls_x509_crt_deinit(crt);
    }
    return true;
}

const struct transport_ops transport_tls = {
    .name = "tls",
    .recv = tls_recv,
    .send = tls_send,
    .short_write_means_full = false,
    .short_read_means_drained = false,
    .buffered = tls_buffered,
    .shutdown = tls_shutdown,
    .release = tls_release,
};
