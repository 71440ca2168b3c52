/* broker/model/exchange_topic.c: the topic exchange, as RabbitMQ defines it. Keys are split
 * on '.' into words; the empty key has no words, any other key has (dots + 1) words, empty
 * words included ("a..b" is a, "", b). In a binding key "*" matches exactly one word and "#"
 * zero or more; every other word matches itself byte for byte.
 *
 * Binding keys form a trie of words. A node's children are its "*" and "#" children plus
 * its literal words, all kept in one hash per router keyed by (parent node, word), as in
 * RabbitMQ's edge table: a node costs no table of its own. Routing walks the trie over the
 * routing key's words, trying at each node the literal child, the "*" child and the "#" child;
 * a "#" node is then tried at every later word position. Positions are byte offsets into the
 * routing key (`done`, one past the end, means no word left), so nothing is allocated.
 *
 * Without care, keys like "#.#.#.#.x" revisit the same (node, position) states exponentially
 * often. A state's result depends only on the state, so each "#" node remembers, for the
 * current route (a generation number), the smallest position it has been tried from: later
 * attempts from that position or beyond are already covered. Every other node is reached
 * from a unique parent state, so each (node, position) is then visited at most once. */
#include "router_type.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum topic_word { TOPIC_ROOT, TOPIC_LITERAL, TOPIC_STAR, TOPIC_HASH };

struct topic_node {
    UT_hash_handle hh;                 /* in topic_index.edges, keyed by edge[] (not the root) */
    struct topic_node *parent;
    struct topic_node *star, *hash;    /* shortcuts to the "*" and "#" children */
    struct router_binding *bindings;   /* bindings whose key ends here, via type_prev/next */
    uint32_t children;                 /* all children, "*" and "#" included */
    uint32_t literal_children;
    uint8_t word;                      /* enum topic_word */
    uint64_t visit_generation;         /* "#" nodes: the route that last tried this node... */
    uint32_t visit_from;               /* ...and the smallest position it was tried from */
    uint32_t edge_len;
    uint8_t edge[];                    /* parent pointer, then the word */
};

struct topic_index {
    struct topic_node *root;
    struct topic_node *edges;          /* every node but the root */
    uint64_t generation;               /* bumped by each route */
};

/* One route in progress. */
struct topic_walk {
    struct topic_index *index;
    const uint8_t *key;
    uint32_t len;
    uint32_t done;                     /* len + 1: position after the last word */
    struct route_set *out;
};

#define EDGE_MAX (sizeof(void *) + ROUTER_MAX_KEY)

static enum topic_word word_kind(const uint8_t *word, size_t len)
{
    if (len == 1 && word[0] == '*')
        return TOPIC_STAR;
    if (len == 1 && word[0] == '#')
        return TOPIC_HASH;
    return TOPIC_LITERAL;
}

/* Writes the edge key (parent, word) into out; returns its length. word_len <= ROUTER_MAX_KEY. */
static size_t edge_key(uint8_t out[EDGE_MAX], const struct topic_node *parent,
                       const uint8_t *word, size_t word_len)
{
    memcpy(out, &parent, sizeof(parent));
    memcpy(out + sizeof(parent), word, word_len);
    return sizeof(parent) + word_len;
}

static struct topic_node *child_find(const struct topic_index *index,
                                     const struct topic_node *parent, const uint8_t *word,
                                     size_t word_len)
{
    uint8_t key[EDGE_MAX];
    size_t key_len = edge_key(key, parent, word, word_len);
    struct topic_node *child;
    HASH_FIND(hh, index->edges, key, key_len, child);
    return child;
}

/* Finds or creates parent's child for word. NULL on ENOMEM. */
static struct topic_node *child_get(struct topic_index *index, struct topic_node *parent,
                                    const uint8_t *word, size_t word_len)
{
    enum topic_word kind = word_kind(word, word_len);
    struct topic_node *child = kind == TOPIC_STAR   ? parent->star
                               : kind == TOPIC_HASH ? parent->hash
                                                    : child_find(index, parent, word, word_len);
    if (child != NULL)
        return child;

    uint8_t key[EDGE_MAX];
    size_t key_len = edge_key(key, parent, word, word_len);
    child = calloc(1, sizeof(*child) + key_len);
    if (child == NULL)
        return NULL;
    child->parent = parent;
    child->word = (uint8_t)kind;
    child->edge_len = (uint32_t)key_len;
    memcpy(child->edge, key, key_len);
    HASH_ADD_KEYPTR(hh, index->edges, child->edge, child->edge_len, child);
    if (child->hh.tbl == NULL) {
        free(child);
        return NULL;
    }
    parent->children++;
    if (kind == TOPIC_STAR)
        parent->star = child;
    else if (kind == TOPIC_HASH)
        parent->hash = child;
    else
        parent->literal_children++;
    return child;
}

/* Frees node and its ancestors while they hold neither bindings nor children. */
static void prune(struct topic_index *index, struct topic_node *node)
{
    while (node != index->root && node->bindings == NULL && node->children == 0) {
        struct topic_node *parent = node->parent;
        HASH_DEL(index->edges, node);
        parent->children--;
        if (node->word == TOPIC_STAR)
            parent->star = NULL;
        else if (node->word == TOPIC_HASH)
            parent->hash = NULL;
        else
            parent->literal_children--;
        free(node);
        node = parent;
    }
}

static int topic_bind(void **slot, struct router_binding *binding)
{
    struct topic_index *index = *slot;
    if (index == NULL) {
        index = calloc(1, sizeof(*index));
        if (index == NULL)
            return -ENOMEM;
        index->root = calloc(1, sizeof(*index->root));
        if (index->root == NULL) {
            free(index);
            return -ENOMEM;
        }
        *slot = index;
    }

    struct topic_node *node = index->root;
    const uint8_t *key = binding->key.ptr;
    uint32_t len = binding->key.len;
    for (uint32_t pos = 0; len > 0;) {
        const uint8_t *dot = memchr(key + pos, '.', len - pos);
        uint32_t end = dot != NULL ? (uint32_t)(dot - key) : len;
        struct topic_node *child = child_get(index, node, key + pos, end - pos);
        if (child == NULL) {
            prune(index, node);
            return -ENOMEM;
        }
        node = child;
        if (end == len)
            break;
        pos = end + 1;
    }
    router_binding_list_append(&node->bindings, binding);
    binding->type_data = node;
    return 0;
}

static void topic_unbind(void **slot, struct router_binding *binding)
{
    struct topic_node *node = binding->type_data;
    router_binding_list_remove(&node->bindings, binding);
    prune(*slot, node);
}

/* Position of the '.' (or the end of the key) closing the word starting at pos. */
static uint32_t word_end(const struct topic_walk *walk, uint32_t pos)
{
    const uint8_t *dot = memchr(walk->key + pos, '.', walk->len - pos);
    return dot != NULL ? (uint32_t)(dot - walk->key) : walk->len;
}

static int match_any(struct topic_walk *walk, struct topic_node *hash, uint32_t pos);

/* Routes the words from pos on through node's subtree. */
static int match_at(struct topic_walk *walk, struct topic_node *node, uint32_t pos)
{
    int rc;
    if (pos == walk->done) {
        for (struct router_binding *binding = node->bindings; binding != NULL;
             binding = binding->type_next) {
            if (route_set_add(walk->out, binding->destination) < 0)
                return -ENOMEM;
        }
        return node->hash != NULL ? match_any(walk, node->hash, pos) : 0;
    }

    uint32_t end = word_end(walk, pos);
    uint32_t word_len = end - pos;
    /* A word spelled "*" or "#" finds the wildcard child itself, tried just below. */
    if (node->literal_children > 0 && word_len <= ROUTER_MAX_KEY &&
        word_kind(walk->key + pos, word_len) == TOPIC_LITERAL) {
        struct topic_node *child = child_find(walk->index, node, walk->key + pos, word_len);
        if (child != NULL && (rc = match_at(walk, child, end + 1)) < 0)
            return rc;
    }
    if (node->star != NULL && (rc = match_at(walk, node->star, end + 1)) < 0)
        return rc;
    if (node->hash != NULL && (rc = match_any(walk, node->hash, pos)) < 0)
        return rc;
    return 0;
}

/* Lets "#" node `hash` swallow zero or more words from pos, then routes the rest below it. */
static int match_any(struct topic_walk *walk, struct topic_node *hash, uint32_t pos)
{
    uint32_t stop = walk->done + 1;
    if (hash->visit_generation == walk->index->generation) {
        if (pos >= hash->visit_from)
            return 0;
        stop = hash->visit_from;
    }
    hash->visit_generation = walk->index->generation;
    hash->visit_from = pos;

    for (uint32_t at = pos; at < stop; at = word_end(walk, at) + 1) {
        int rc = match_at(walk, hash, at);
        if (rc < 0)
            return rc;
        if (at == walk->done)
            break;
    }
    return 0;
}

static int topic_route(const struct router *router, void *index, struct proto_bytes routing_key,
                       struct proto_bytes headers, struct route_set *out)
{
    (void)router;
    (void)headers;
    /* `done` needs one position past the key; no shortstr comes near this length. */
    if (index == NULL || routing_key.len == UINT32_MAX)
        return 0;
    struct topic_walk walk = {
        .index = index,
        .key = routing_key.ptr,
        .len = routing_key.len,
        .done = routing_key.len + 1,
        .out = out,
    };
    walk.index->generation++;
    return match_at(&walk, walk.index->root, routing_key.len == 0 ? walk.done : 0);
}

static void topic_destroy(void *slot)
{
    struct topic_index *index = slot;
    if (index == NULL)
        return;
    struct topic_node *node, *next;
    HASH_ITER(hh, index->edges, node, next) {
        HASH_DEL(index->edges, node);
        free(node);
    }
    free(index->root);
    free(index);
}

const struct router_type router_type_topic = {
    .name = "topic",
    .bind = topic_bind,
    .unbind = topic_unbind,
    .route = topic_route,
    .destroy = topic_destroy,
};
