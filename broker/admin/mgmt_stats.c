/* broker/admin/mgmt_stats.c: the broker's counters as RabbitMQ's management API shows them:
 * `message_stats: {publish: N, publish_details: {rate: R}, ...}` and, when the request asks
 * with ?msg_rates_age=&msg_rates_incr= or ?lengths_age=&lengths_incr= (seconds, as RabbitMQ's
 * API and its web console send them),
 * `samples: [{sample, timestamp}, ...]` (newest first) with `avg` and `avg_rate`, from the
 * sampler's history (introspect_history: one sample per tick, five minutes kept). */
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "mgmt_internal.h"

/* Each counter: its name, and where it lives in the counters and in the rates. */
#define FIELD(name, kinds) {#name, offsetof(struct introspect_message_stats, name), \
                            offsetof(struct introspect_rates, name), kinds}
static const struct field {
    const char *name;
    size_t count_at, rate_at;
    unsigned kinds;
} fields[] = {
    FIELD(publish, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(publish_in, MGMT_STATS_EXCHANGE),
    FIELD(publish_out, MGMT_STATS_EXCHANGE),
    FIELD(confirm, MGMT_STATS_CHANNEL),
    FIELD(return_unroutable, MGMT_STATS_CHANNEL),
    FIELD(drop_unroutable, MGMT_STATS_CHANNEL),
    FIELD(deliver, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(deliver_no_ack, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(get, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(get_no_ack, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(get_empty, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(deliver_get, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(redeliver, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(ack, MGMT_STATS_QUEUE | MGMT_STATS_CHANNEL),
    FIELD(drop_expired, MGMT_STATS_QUEUE),
    FIELD(drop_maxlen, MGMT_STATS_QUEUE),
    FIELD(drop_rejected, MGMT_STATS_QUEUE),
};

static uint64_t count_of(const struct introspect_message_stats *s, const struct field *f)
{
    return *(const uint64_t *)((const char *)s + f->count_at);
}

json_t *mgmt_message_stats(const struct introspect_message_stats *stats, const struct introspect_rates *rates,
                           unsigned kind)
{
    json_t *o = json_object();
    char key[64];
    /* Like RabbitMQ, an object nothing has passed through shows no counters ({}): most of a
     * large broker's queues are idle, and this keeps their listing small. */
    bool any = false;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !any; i++)
        any = (fields[i].kinds & kind) && count_of(stats, &fields[i]) != 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && any; i++) {
        const struct field *f = &fields[i];
        if (!(f->kinds & kind))
            continue;
        json_object_set_new(o, f->name, json_integer((json_int_t)count_of(stats, f)));
        double rate = rates ? *(const double *)((const char *)rates + f->rate_at) : 0.0;
        snprintf(key, sizeof key, "%s_details", f->name);
        json_object_set_new(o, key, json_pack("{s:f}", "rate", rate));
    }
    return o;
}

/* ---- history ------------------------------------------------------------------------------- */

struct history_request {
    uint64_t age_ms, incr_ms; /* what the query asked for */
    json_t *stats;            /* message_stats to decorate, or NULL */
    json_t *lengths;          /* object holding messages, messages_ready, ... or NULL */
    unsigned kind;
};

/* samples[] (oldest first) as RabbitMQ's details for one series: newest first, at most age,
 * every incr, with avg (of the values) and avg_rate (per second over the window). */
static void put_samples(json_t *details, const struct introspect_sample *samples, size_t count, uint64_t age_ms,
                        uint64_t incr_ms, uint64_t (*value)(const struct introspect_sample *, const void *),
                        const void *ctx)
{
    json_t *list = json_array();
    if (count == 0) {
        json_object_set_new(details, "samples", list);
        return;
    }
    uint64_t newest = samples[count - 1].timestamp_ms, last_taken = 0;
    double sum = 0;
    size_t taken = 0, first = count - 1, last = count - 1;
    for (size_t k = count; k-- > 0;) {
        const struct introspect_sample *s = &samples[k];
        if (newest - s->timestamp_ms > age_ms)
            break;
        if (taken > 0 && incr_ms > 0 && last_taken - s->timestamp_ms < incr_ms)
            continue;
        uint64_t v = value(s, ctx);
        json_array_append_new(list, json_pack("{s:I,s:I}", "sample", (json_int_t)v, "timestamp",
                                              (json_int_t)s->timestamp_ms));
        sum += (double)v;
        last_taken = s->timestamp_ms;
        first = k;
        taken++;
    }
    json_object_set_new(details, "samples", list);
    json_object_set_new(details, "avg", json_real(taken ? sum / (double)taken : 0.0));
    double seconds = (double)(samples[last].timestamp_ms - samples[first].timestamp_ms) / 1000.0;
    double delta = (double)value(&samples[last], ctx) - (double)value(&samples[first], ctx);
    json_object_set_new(details, "avg_rate", json_real(seconds > 0 ? delta / seconds : 0.0));
}

static uint64_t counter_value(const struct introspect_sample *s, const void *ctx)
{
    return count_of(&s->message_stats, ctx);
}

static uint64_t ready_value(const struct introspect_sample *s, const void *ctx)
{
    (void)ctx;
    return s->messages_ready;
}

static uint64_t unacked_value(const struct introspect_sample *s, const void *ctx)
{
    (void)ctx;
    return s->messages_unacknowledged;
}

static uint64_t total_value(const struct introspect_sample *s, const void *ctx)
{
    (void)ctx;
    return s->messages_ready + s->messages_unacknowledged;
}

static json_t *details(json_t *parent, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s_details", name);
    json_t *d = json_object_get(parent, key);
    if (!json_is_object(d)) {
        d = json_object();
        json_object_set_new(parent, key, d);
    }
    return d;
}

static void on_history(const struct introspect_sample *samples, size_t count, void *arg)
{
    struct history_request *h = arg;
    if (h->stats) {
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if ((fields[i].kinds & h->kind) && json_object_get(h->stats, fields[i].name))
                put_samples(details(h->stats, fields[i].name), samples, count, h->age_ms, h->incr_ms, counter_value,
                            &fields[i]);
    }
    if (h->lengths) {
        put_samples(details(h->lengths, "messages"), samples, count, h->age_ms, h->incr_ms, total_value, NULL);
        put_samples(details(h->lengths, "messages_ready"), samples, count, h->age_ms, h->incr_ms, ready_value, NULL);
        put_samples(details(h->lengths, "messages_unacknowledged"), samples, count, h->age_ms, h->incr_ms,
                    unacked_value, NULL);
    }
}

/* The age and increment the query asks for, in ms. RabbitMQ takes both in seconds
 * (rabbit_mgmt_util:range multiplies by 1000): its console asks ?lengths_age=600&lengths_incr=5
 * for "the last ten minutes, every five seconds". */
static bool query_ms(const struct mgmt_call *call, const char *age_key, const char *incr_key, uint64_t *age,
                     uint64_t *incr)
{
    const char *a = mgmt_query(call, age_key), *i = mgmt_query(call, incr_key);
    if (!a)
        return false;
    *age = strtoull(a, NULL, 10) * 1000;
    *incr = i ? strtoull(i, NULL, 10) * 1000 : 0;
    return true;
}

void mgmt_add_history(const struct mgmt_call *call, enum introspect_history_kind kind, const char *vhost,
                      struct proto_bytes queue, json_t *message_stats, json_t *lengths)
{
    struct history_request h = {.kind = kind == INTROSPECT_HISTORY_QUEUE ? MGMT_STATS_QUEUE : MGMT_STATS_CHANNEL};
    uint64_t age, incr;
    if (message_stats && query_ms(call, "msg_rates_age", "msg_rates_incr", &age, &incr)) {
        h.stats = message_stats;
        h.age_ms = age;
        h.incr_ms = incr;
        introspect_history(call->server, kind, vhost, queue, INTROSPECT_HISTORY_MAX, on_history, &h);
        h.stats = NULL;
    }
    if (lengths && query_ms(call, "lengths_age", "lengths_incr", &age, &incr)) {
        h.lengths = lengths;
        h.age_ms = age;
        h.incr_ms = incr;
        introspect_history(call->server, kind, vhost, queue, INTROSPECT_HISTORY_MAX, on_history, &h);
    }
}
