/* broker/net/tls_context.c: loading TLS settings into GnuTLS credentials and priorities, and
 * the reference count that lets a reload replace them under open sessions. */
#include "tls_context.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_context {
    unsigned refs;
    struct tls_settings settings;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t priority_cache;
    char priority[512];
    gnutls_datum_t cert_pem, key_pem; /* NUL-terminated copies for HTTPS */
};

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int tls_parse_versions(const char *text, unsigned *out)
{
    unsigned bits = 0;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ", ");
        if (len) {
            char word[16];
            if (len >= sizeof word)
                return -1;
            memcpy(word, p, len);
            word[len] = '\0';
            const char *v = word;
            if (strncmp(v, "tlsv", 4) == 0)
                v += 4;
            else if (strncmp(v, "tls", 3) == 0)
                v += 3;
            if (strcmp(v, "1.2") == 0)
                bits |= TLS_VERSION_12;
            else if (strcmp(v, "1.3") == 0)
                bits |= TLS_VERSION_13;
            else
                return -1;
        }
        p += len;
        p += strspn(p, ", ");
    }
    if (!bits)
        return -1;
    *out = bits;
    return 0;
}

/* Reads a whole file as a NUL-terminated datum (gnutls_load_file adds no NUL). */
static int load_text(const char *path, gnutls_datum_t *out)
{
    gnutls_datum_t raw = {0};
    if (gnutls_load_file(path, &raw) < 0)
        return -1;
    out->data = gnutls_malloc(raw.size + 1);
    if (!out->data) {
        gnutls_free(raw.data);
        return -1;
    }
    memcpy(out->data, raw.data, raw.size);
    out->data[raw.size] = '\0';
    out->size = raw.size;
    gnutls_free(raw.data);
    return 0;
}

static void context_free(struct tls_context *ctx)
{
    if (ctx->priority_cache)
        gnutls_priority_deinit(ctx->priority_cache);
    if (ctx->cred)
        gnutls_certificate_free_credentials(ctx->cred);
    if (ctx->key_pem.data) {
        memset(ctx->key_pem.data, 0, ctx->key_pem.size);
        gnutls_free(ctx->key_pem.data);
    }
    gnutls_free(ctx->cert_pem.data);
    free(ctx);
}

int tls_context_load(const struct tls_settings *s, struct tls_context **out, char *err, size_t cap)
{
    if (!s->certfile || !s->keyfile)
        return fail(err, cap, "tls_certfile and tls_keyfile are both required");
    if (s->verify_peer && !s->cacertfile)
        return fail(err, cap, "tls_verify_peer needs tls_cacertfile");
    struct tls_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return fail(err, cap, "out of memory");
    ctx->refs = 1;
    ctx->settings = *s;
    int rc;
    if (load_text(s->certfile, &ctx->cert_pem) < 0) {
        fail(err, cap, "cannot read tls_certfile %s", s->certfile);
        goto error;
    }
    if (load_text(s->keyfile, &ctx->key_pem) < 0) {
        fail(err, cap, "cannot read tls_keyfile %s", s->keyfile);
        goto error;
    }
    if ((rc = gnutls_certificate_allocate_credentials(&ctx->cred)) < 0) {
        fail(err, cap, "GnuTLS: %s", gnutls_strerror(rc));
        goto error;
    }
    gnutls_datum_t cert = {ctx->cert_pem.data, ctx->cert_pem.size};
    gnutls_datum_t key = {ctx->key_pem.data, ctx->key_pem.size};
    rc = gnutls_certificate_set_x509_key_mem2(ctx->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        fail(err, cap, "certificate %s with key %s: %s", s->certfile, s->keyfile, gnutls_strerror(rc));
        goto error;
    }
    if (s->cacertfile) {
        rc = gnutls_certificate_set_x509_trust_file(ctx->cred, s->cacertfile, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            fail(err, cap, "tls_cacertfile %s: %s", s->cacertfile,
                 rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
            goto error;
        }
    }
    unsigned versions = s->versions ? s->versions : TLS_VERSION_12 | TLS_VERSION_13;
    snprintf(ctx->priority, sizeof ctx->priority, "NORMAL:-VERS-ALL%s%s%s%s",
             versions & TLS_VERSION_13 ? ":+VERS-TLS1.3" : "", versions & TLS_VERSION_12 ? ":+VERS-TLS1.2" : "",
             s->ciphers && *s->ciphers ? ":" : "", s->ciphers ? s->ciphers : "");
    const char *where = NULL;
    if ((rc = gnutls_priority_init(&ctx->priority_cache, ctx->priority, &where)) < 0) {
        fail(err, cap, "tls_ciphers: %s near '%s'", gnutls_strerror(rc), where ? where : "?");
        ctx->priority_cache = NULL;
        goto error;
    }
    *out = ctx;
    return 0;
error:
    context_free(ctx);
    return -1;
}

struct tls_context *tls_context_ref(struct tls_context *ctx)
{
    ctx->refs++;
    return ctx;
}

void tls_context_unref(struct tls_context *ctx)
{
    if (ctx && --ctx->refs == 0)
        context_free(ctx);
}

const struct tls_settings *tls_context_settings(const struct tls_context *ctx) { return &ctx->settings; }
const char *tls_context_cert_pem(const struct tls_context *ctx) { return (const char *)ctx->cert_pem.data; }
const char *tls_context_key_pem(const struct tls_context *ctx) { return (const char *)ctx->key_pem.data; }
const char *tls_context_priority(const struct tls_context *ctx) { return ctx->priority; }
void *tls_context_credentials(const struct tls_context *ctx) { return ctx->cred; }
void *tls_context_priority_cache(const struct tls_context *ctx) { return ctx->priority_cache; }
