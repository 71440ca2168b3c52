/* broker/admin/mgmt_internal.h: between the management API's router (mgmt.c) and the files
 * that serve its resources (mgmt_*.c). A handler gets one decoded call (path segments, query,
 * JSON body, who is asking) and leaves its answer in the call: a status and a JSON document.
 * The same calls come from the HTTP door (mgmt_http.c) and from the admin socket (admin.c),
 * which runs them as the broker's own operator. */
#ifndef WARREN_MGMT_INTERNAL_H
#define WARREN_MGMT_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"
#include "introspect.h"
#include "proto.h"

struct server;
struct mgmt;
struct mgmt_listing;
struct jw;

enum mgmt_method { MGMT_GET = 1, MGMT_PUT = 2, MGMT_POST = 4, MGMT_DELETE = 8 };

/* RabbitMQ's management tags, as bits. MGMT_TAGS_ALL is the admin socket's operator. */
enum {
    MGMT_TAG_MANAGEMENT = 1,
    MGMT_TAG_POLICYMAKER = 2,
    MGMT_TAG_MONITORING = 4,
    MGMT_TAG_ADMINISTRATOR = 8,
    MGMT_TAGS_ALL = 15,
};

/* Who may use a route (per method class: reads are GET, writes the others), as RabbitMQ's
 * rabbit_web_dispatch_access_control checks them:
 *   MGMT_USER: any management user; the handler still filters or checks vhosts,
 *   MGMT_MONITOR: monitoring or administrator,
 *   MGMT_POLICY: policymaker or administrator (and the vhost must be the user's),
 *   MGMT_ADMIN: administrator only. */
enum mgmt_access { MGMT_USER, MGMT_MONITOR, MGMT_POLICY, MGMT_ADMIN };

#define MGMT_MAX_SEGMENTS 8

/* One path segment after "/api/", percent-decoded; it may hold NUL bytes. */
struct mgmt_segment {
    char *s;
    size_t len;
};

struct mgmt_call {
    struct mgmt *mgmt;
    struct server *server;
    enum mgmt_method method;
    struct mgmt_segment seg[MGMT_MAX_SEGMENTS];
    size_t nseg;
    const struct http_param *query;
    size_t nquery;
    json_t *body;     /* the request's JSON body; NULL when it had none */
    const char *user; /* who is asking ("" for the admin socket) */
    const char *reason; /* the X-Reason header (closing a connection), NULL when absent */
    unsigned tags;    /* MGMT_TAG_* bits of that user */
    /* The answer. */
    unsigned status;  /* 200 unless a handler says otherwise */
    json_t *reply;    /* owned by the call; NULL: empty body */
    struct mgmt_listing *listing; /* or a list answer, being written or finished (mgmt_list.c) */
    const struct http_request *req; /* the HTTP request (NULL: the admin socket's mgmt_run) */
    bool deferred;                  /* mgmt_defer took the answer: it comes later */
};

/* A resource: a path pattern of literal segments and "*" (any one segment), the methods it
 * takes (MGMT_* bits) and who may read (GET) or write (PUT, POST, DELETE) it. A segment
 * position named in vhost_segment (1-based, 0: none) holds a vhost name: the router answers
 * 404 when it does not exist and 401 when the user may not see it, before the handler runs. */
struct mgmt_route {
    const char *pattern; /* e.g. "queues/VHOST/NAME/get" written with "*" for VHOST and NAME */
    unsigned methods;
    enum mgmt_access read, write;
    size_t vhost_segment;
    void (*handler)(struct mgmt_call *call);
};

/* Each file's table of routes, ended by an entry with a NULL pattern. */
extern const struct mgmt_route mgmt_overview_routes[];
extern const struct mgmt_route mgmt_access_routes[];
extern const struct mgmt_route mgmt_policy_routes[];
extern const struct mgmt_route mgmt_queues_routes[];
extern const struct mgmt_route mgmt_exchanges_routes[];
extern const struct mgmt_route mgmt_bindings_routes[];
extern const struct mgmt_route mgmt_connections_routes[];
extern const struct mgmt_route mgmt_definitions_routes[];

/* ---- answers ------------------------------------------------------------------------------ */

/* Sets the answer (takes body; NULL: empty). */
void mgmt_reply(struct mgmt_call *call, unsigned status, json_t *body);
/* An error answer as RabbitMQ shapes it: {"error": error, "reason": text}. 400 bad_request,
 * 401 not_authorised, 404 not_found ("Object Not Found"), 405, 409, 500 internal_error. */
void mgmt_fail(struct mgmt_call *call, unsigned status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 404 {"error":"Object Not Found","reason":"Not Found"}, RabbitMQ's answer for a missing object. */
void mgmt_not_found(struct mgmt_call *call);
/* 204 No Content: the answer of a successful PUT/DELETE that creates nothing new to show;
 * created true gives 201 Created (a new object). */
void mgmt_done(struct mgmt_call *call, bool created);
/* An answer given later, by a handler that waits for something (the broker's own AMQP client:
 * inner_client.h). mgmt_defer returns its handle, or NULL when the request cannot wait (the
 * admin socket) or on ENOMEM: the handler then answers now. mgmt_answer_later sends what
 * `shape` holds (a call made as {.user = ""}, filled with mgmt_reply or mgmt_fail, freed
 * here) and frees the handle; it touches neither the mgmt nor the server, so it may run after
 * the management API stopped (the answer is then dropped). */
struct mgmt_later;
struct mgmt_later *mgmt_defer(struct mgmt_call *call);
void mgmt_answer_later(struct mgmt_later *later, struct mgmt_call *shape);

/* ---- list answers (mgmt_list.c) ------------------------------------------------------------ */

/* A list answer, shaped by the router as RabbitMQ does (?sort, sort_reverse, columns,
 * name/use_regex, page/page_size). Either all at once: mgmt_list takes items (an array of
 * objects); or written item by item, without a document: mgmt_list_start, then per item
 * mgmt_list_item (the writer to write exactly one object into; NULL when the answer is no
 * longer a list, e.g. after an error) and mgmt_list_item_end. */
void mgmt_list(struct mgmt_call *call, json_t *items);
void mgmt_list_start(struct mgmt_call *call);
struct jw *mgmt_list_item(struct mgmt_call *call);
void mgmt_list_item_end(struct mgmt_call *call);
/* The router's part: sorts, filters and pages the items (or answers 400 for a bad page or
 * regex); the finished list stays in call->listing, to be answered by one of: */
void mgmt_list_finish(struct mgmt_call *call);
/* The HTTP door: hands a finished list over to res as a body read in pieces (the listing goes
 * with it). False when the call's answer is not a finished list. */
bool mgmt_list_answer(struct mgmt_call *call, struct http_response *res);
/* The admin socket: a finished list joined into one malloc'd, NUL-ended text (*len bytes);
 * NULL when there is none or on ENOMEM. */
char *mgmt_list_text(struct mgmt_call *call, size_t *len);
void mgmt_list_free(struct mgmt_listing *listing);

/* ---- requests ----------------------------------------------------------------------------- */

/* A query parameter's value, or NULL. */
const char *mgmt_query(const struct mgmt_call *call, const char *key);
/* obj's member at a dotted path ("message_stats.publish", "queue.name"), or NULL. */
json_t *mgmt_dotted(json_t *obj, const char *path);
/* The request body's member `key` (NULL when no body or no such member). */
json_t *mgmt_body(const struct mgmt_call *call, const char *key);
/* seg[i] as a C string when it holds no NUL byte, else NULL after answering 400. */
const char *mgmt_name(struct mgmt_call *call, size_t i);

/* ---- who may see what ---------------------------------------------------------------------- */

/* May the caller see the vhost itself, in /api/vhosts (administrators and monitors: every vhost;
 * others: the vhosts they have any permission in)? */
bool mgmt_vhost_visible(const struct mgmt_call *call, const char *vhost);
/* May the caller see the objects inside vhost: its queues, exchanges, bindings, consumers,
 * policies (administrators: every vhost; others, monitors included: the vhosts they have any
 * permission in, as RabbitMQ's filter_vhost and is_authorized_vhost)? */
bool mgmt_vhost_open(const struct mgmt_call *call, const char *vhost);
/* Does the caller see everything (administrator or monitoring)? Others see only their own
 * connections and channels, and their vhosts' objects. */
bool mgmt_sees_all(const struct mgmt_call *call);

/* ---- shared facts ------------------------------------------------------------------------ */

/* This node's name, "warren@<short hostname>". */
const char *mgmt_node_name(void);
/* The user's tags as a JSON array of strings (empty when none or no such user). */
json_t *mgmt_user_tags(struct server *server, const char *user);
/* RabbitMQ's JSON for a user (name, password_hash, hashing_algorithm, tags, limits); tags_csv
 * is its tags as access_for_each_user gives them, or NULL to look them up. */
json_t *mgmt_user_json(struct server *server, const char *name, const char *tags_csv);
/* RabbitMQ's JSON for a vhost, with its message totals. */
json_t *mgmt_vhost_json(struct server *server, const char *name);

/* ---- figures (mgmt_stats.c) ---------------------------------------------------------------- */

/* Which counters an object kind shows: queues (publish, deliver..., ack, drops), exchanges
 * (publish_in, publish_out), channels and everything summed from them (connections, vhosts,
 * the overview). */
enum { MGMT_STATS_QUEUE = 1, MGMT_STATS_EXCHANGE = 2, MGMT_STATS_CHANNEL = 4 };
/* RabbitMQ's message_stats object: {name: count, name_details: {rate: per second}} for the
 * kind's counters (rates may be NULL: 0); {} while every one of them is 0. */
json_t *mgmt_message_stats(const struct introspect_message_stats *stats, const struct introspect_rates *rates,
                           unsigned kind);
/* When the request asks for history (?msg_rates_age/msg_rates_incr, ?lengths_age/lengths_incr,
 * in seconds as in RabbitMQ), adds "samples", "avg" and "avg_rate" to the *_details of message_stats (may be NULL) and
 * of lengths (an object with messages, messages_ready, messages_unacknowledged; may be NULL). */
void mgmt_add_history(const struct mgmt_call *call, enum introspect_history_kind kind, const char *vhost,
                      struct proto_bytes queue, json_t *message_stats, json_t *lengths);

/* ---- JSON for the model's values (mgmt_json.c) --------------------------------------------- */

/* A JSON string from len arbitrary bytes: valid UTF-8 passes, each byte of an invalid sequence
 * becomes U+FFFD. NULL only when out of memory. */
json_t *mgmt_string(const char *s, size_t len);
json_t *mgmt_bytes(struct proto_bytes b);
/* An AMQP field table's contents as a JSON object (RabbitMQ's rendering: numbers as numbers,
 * byte arrays and strings as strings, timestamps as numbers, nested tables and arrays). */
json_t *mgmt_table(struct proto_bytes table);
/* Writes table contents as mgmt_table renders them ({} without building anything when empty). */
void mgmt_write_table(struct jw *w, struct proto_bytes table);
/* Writes v (taken; NULL: null) and frees it. */
void mgmt_write_json(struct jw *w, json_t *v);
/* The document a writer holds (one item written after jw_item), freeing the writer's buffers;
 * NULL on failure. */
json_t *mgmt_writer_json(struct jw *w);
/* A JSON object as AMQP field-table contents appended to *out (malloc'd, *len bytes); values:
 * strings -> longstr, integers -> signed 64-bit, reals -> double, booleans, null -> void,
 * objects -> tables, arrays -> arrays. Returns 0, or -1 with a reason in why. */
struct table_buf;
int mgmt_table_from_json(const json_t *object, struct table_buf *out, char *why, size_t why_len);
/* ---- the object resources (mgmt_objects.c) ------------------------------------------------- */

struct reply_error;
struct spec_basic_properties;
struct introspect_exchange;
struct introspect_binding;

/* Answers an AMQP error as RabbitMQ's API does: 404 for NOT_FOUND, 401 "Access refused." for
 * ACCESS_REFUSED and NOT_ALLOWED, else 400 with the explanation (the text after "CODE - "). */
void mgmt_amqp_error(struct mgmt_call *call, const struct reply_error *err);
/* The user whose AMQP permissions an operation needs (operate.h): NULL for administrators and
 * the admin socket, who pass every check. */
const char *mgmt_actor(const struct mgmt_call *call);
/* RabbitMQ's JSON for a consumer (mgmt_connections.c). channels maps channel names to their
 * JSON, for channel_details with the peer and user; NULL: details from the channel's name. */
json_t *mgmt_consumer_json(const struct introspect_consumer *c, json_t *channels);
/* seg[i] as bytes; for an exchange, "amq.default" names the default exchange (""). */
struct proto_bytes mgmt_segment_bytes(const struct mgmt_call *call, size_t i);
struct proto_bytes mgmt_exchange_segment(const struct mgmt_call *call, size_t i);
/* The body's "arguments" (NULL or an object) as table contents in out (freed by the caller);
 * -1 after answering 400. */
int mgmt_arguments(struct mgmt_call *call, const json_t *arguments, struct table_buf *out);
/* The body's boolean `key` (true/false or "true"/"false"; fallback when absent); -1 after 400. */
int mgmt_json_bool(struct mgmt_call *call, const char *key, bool fallback, bool *out);
/* Message properties as RabbitMQ's API shows them (only those set). */
json_t *mgmt_properties(const struct spec_basic_properties *p);
/* The API's "properties" object as basic properties; strings borrow from o, headers are built
 * in *headers (freed by the caller). -1 after answering 400. */
int mgmt_properties_from_json(struct mgmt_call *call, const json_t *o, struct spec_basic_properties *p,
                              struct table_buf *headers);
json_t *mgmt_exchange_json(const struct introspect_exchange *x);
json_t *mgmt_binding_json(const struct introspect_binding *b);
/* RabbitMQ's properties_key of a binding: the routing key URL-quoted ("~" for an empty key
 * without arguments), then "~" and a hash of the arguments when there are any. */
#define MGMT_PROPERTIES_KEY_MAX (3 * 255 + 32)
void mgmt_properties_key(struct proto_bytes key, struct proto_bytes arguments, char out[MGMT_PROPERTIES_KEY_MAX]);

/* Serialises doc (compact, keys in insertion order) into a malloc'd string; NULL on ENOMEM. */
char *mgmt_dump(const json_t *doc, size_t *len);

#endif
