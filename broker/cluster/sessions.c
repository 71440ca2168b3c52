/* broker/cluster/sessions.c: the per-session record of applied requests (rules: sessions.h).
 *
 * Encoding, one table per session in an array:
 *     "id" uint64, "floor" uint64, "seen" uint64, "window" bytes (SESSIONS_WINDOW / 8) */
#include "sessions.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_WORDS (SESSIONS_WINDOW / 64)

static struct session *session_find(struct sessions *s, uint64_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].id == id)
            return &s->v[i];
    return NULL;
}

/* The session id, created (evicting the one seen longest ago when SESSIONS_MAX are kept). NULL
 * only when memory runs out. */
static struct session *session_get(struct sessions *s, uint64_t id)
{
    struct session *found = session_find(s, id);
    if (found)
        return found;
    if (s->n == SESSIONS_MAX) {
        size_t oldest = 0;
        for (size_t i = 1; i < s->n; i++)
            if (s->v[i].seen < s->v[oldest].seen)
                oldest = i;
        s->v[oldest] = s->v[--s->n];
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct session *grown = realloc(s->v, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        s->v = grown;
        s->cap = cap;
    }
    found = &s->v[s->n++];
    memset(found, 0, sizeof(*found));
    found->id = id;
    return found;
}

static bool window_bit(const struct session *s, uint64_t i)
{
    return (s->window[i / 64] >> (i % 64)) & 1;
}

/* Moves the floor up by k, dropping the window's first k bits. */
static void window_shift(struct session *s, uint64_t k)
{
    if (k >= SESSIONS_WINDOW) {
        memset(s->window, 0, sizeof(s->window));
        s->floor += k;
        return;
    }
    size_t words = (size_t)(k / 64), bits = (size_t)(k % 64);
    for (size_t i = 0; i < WINDOW_WORDS; i++) {
        uint64_t lo = i + words < WINDOW_WORDS ? s->window[i + words] : 0;
        uint64_t hi = i + words + 1 < WINDOW_WORDS ? s->window[i + words + 1] : 0;
        s->window[i] = bits ? (lo >> bits) | (hi << (64 - bits)) : lo;
    }
    s->floor += k;
}

/* Records request r of s as applied; false when it already was. */
static bool session_mark(struct session *s, uint64_t r)
{
    if (r <= s->floor)
        return false;
    if (r - s->floor > SESSIONS_WINDOW) /* far ahead: the oldest forgotten requests count as applied */
        window_shift(s, r - s->floor - SESSIONS_WINDOW);
    uint64_t i = r - s->floor - 1;
    if (window_bit(s, i))
        return false;
    s->window[i / 64] |= (uint64_t)1 << (i % 64);
    uint64_t run = 0;
    while (run < SESSIONS_WINDOW && window_bit(s, run))
        run++;
    if (run)
        window_shift(s, run);
    return true;
}

bool sessions_record(struct sessions *s, uint64_t session, uint64_t request, uint64_t seq)
{
    struct session *found = session_get(s, session);
    if (!found)
        return true;
    bool fresh = session_mark(found, request);
    found->seen = seq;
    return fresh;
}

int sessions_encode(const struct sessions *s, struct table_buf *array)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const struct session *e = &s->v[i];
        struct table_buf t = {0};
        struct table_value u = {.type = TABLE_UINT64};
        u.v.u64 = e->id;
        rc |= table_buf_put_field(&t, "id", 2, &u);
        u.v.u64 = e->floor;
        rc |= table_buf_put_field(&t, "floor", 5, &u);
        u.v.u64 = e->seen;
        rc |= table_buf_put_field(&t, "seen", 4, &u);
        u = (struct table_value){.type = TABLE_BYTES};
        u.v.bytes = (struct proto_bytes){(const uint8_t *)e->window, sizeof(e->window)};
        rc |= table_buf_put_field(&t, "window", 6, &u);
        u = (struct table_value){.type = TABLE_TABLE};
        u.v.bytes = (struct proto_bytes){t.data, (uint32_t)t.len};
        rc |= table_buf_put_value(array, &u);
        table_buf_free(&t);
    }
    return rc == 0 ? 0 : -1;
}

static bool find_u64(struct proto_bytes table, const char *key, uint64_t *out)
{
    struct table_value v;
    if (table_find(table, key, &v) != 1 || v.type != TABLE_UINT64)
        return false;
    *out = v.v.u64;
    return true;
}

int sessions_decode(struct proto_bytes array, struct sessions *out)
{
    struct table_iter it;
    struct table_value e;
    struct sessions fresh = {0};
    table_iter_init(&it, array);
    int more;
    while ((more = array_next(&it, &e)) == 1) {
        struct table_value w;
        struct session s;
        if (e.type != TABLE_TABLE || !find_u64(e.v.bytes, "id", &s.id) || !find_u64(e.v.bytes, "floor", &s.floor) ||
            !find_u64(e.v.bytes, "seen", &s.seen) || table_find(e.v.bytes, "window", &w) != 1 ||
            w.type != TABLE_BYTES || w.v.bytes.len != sizeof(s.window) || fresh.n == SESSIONS_MAX ||
            session_find(&fresh, s.id))
            break;
        memcpy(s.window, w.v.bytes.ptr, sizeof(s.window));
        if (fresh.n == fresh.cap) {
            size_t cap = fresh.cap ? fresh.cap * 2 : 8;
            struct session *grown = realloc(fresh.v, cap * sizeof(*grown));
            if (!grown)
                break;
            fresh.v = grown;
            fresh.cap = cap;
        }
        fresh.v[fresh.n++] = s;
    }
    if (more != 0) {
        sessions_free(&fresh);
        return -1;
    }
    *out = fresh;
    return 0;
}

void sessions_free(struct sessions *s)
{
    free(s->v);
    *s = (struct sessions){0};
}

int session_wait_add(struct session_wait **table, struct session_wait *w, uint64_t session, uint64_t request)
{
    memset(w, 0, sizeof(*w));
    w->session = session;
    w->request = request;
    HASH_ADD(hh, *table, session, 2 * sizeof(uint64_t), w);
    return w->hh.tbl ? 0 : -ENOMEM;
}

struct session_wait *session_wait_take(struct session_wait **table, uint64_t session, uint64_t request)
{
    _Static_assert(offsetof(struct session_wait, request) == offsetof(struct session_wait, session) + sizeof(uint64_t),
                   "the key is session and request side by side");
    const uint64_t key[2] = {session, request};
    struct session_wait *w;
    HASH_FIND(hh, *table, key, sizeof(key), w);
    if (w)
        HASH_DELETE(hh, *table, w);
    return w;
}
