/* tests/unit/model/bench_topic.c: nanoseconds per topic route with 100,000 bindings of mixed
 * shapes (literal, "*", "#" first, middle and last). Not a test: run it by hand. No RabbitMQ
 * figure is printed beside it: none has been measured on this machine yet. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "router.h"

#define BINDINGS 100000
#define ROUNDS 2000000

static char destinations[BINDINGS];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    struct router *router = router_create(ROUTER_TOPIC);
    if (router == NULL)
        return 1;
    char key[64];
    double start = now_ns();
    for (size_t i = 0; i < BINDINGS; i++) {
        switch (i % 5) {
        case 0: snprintf(key, sizeof(key), "stock.s%zu.nyse", i); break;
        case 1: snprintf(key, sizeof(key), "stock.*.s%zu", i); break;
        case 2: snprintf(key, sizeof(key), "s%zu.#", i % 1000); break;
        case 3: snprintf(key, sizeof(key), "#.s%zu", i); break;
        default: snprintf(key, sizeof(key), "s%zu.*.#.x%zu", i % 100, i % 7); break;
        }
        if (router_bind(router, &destinations[i], (const uint8_t *)key, strlen(key),
                        (struct proto_bytes){NULL, 0}) < 0)
            return 1;
    }
    double bound = now_ns();

    static const char *const keys[] = {
        "stock.s5.nyse", "stock.x.s6", "s17.a.b", "x.y.s3", "s42.q.r.x0", "nothing.at.all",
        "s4.a.b.c.d.x4", "a.b.c.d.e.f.g.h",
    };
    size_t key_count = sizeof(keys) / sizeof(keys[0]);
    struct proto_bytes routing[8];
    for (size_t k = 0; k < key_count; k++)
        routing[k] = (struct proto_bytes){(const uint8_t *)keys[k], (uint32_t)strlen(keys[k])};

    struct route_set set = {0};
    size_t routed = 0;
    double begin = now_ns();
    for (size_t round = 0; round < ROUNDS; round++) {
        route_set_clear(&set);
        if (router_route(router, routing[round % key_count], (struct proto_bytes){NULL, 0}, &set) < 0)
            return 1;
        routed += set.count;
    }
    double end = now_ns();

    printf("topic: %d bindings bound in %.1f ms; %.0f ns/route over %d routes (%.2f destinations/route)\n",
           BINDINGS, (bound - start) / 1e6, (end - begin) / ROUNDS, ROUNDS,
           (double)routed / ROUNDS);

    /* Per key: the cost grows with the destinations found, not with the bindings held. */
    for (size_t k = 0; k < key_count; k++) {
        begin = now_ns();
        for (size_t round = 0; round < ROUNDS / key_count; round++) {
            route_set_clear(&set);
            if (router_route(router, routing[k], (struct proto_bytes){NULL, 0}, &set) < 0)
                return 1;
        }
        end = now_ns();
        printf("  %-18s %6.0f ns/route, %zu destinations\n", keys[k],
               (end - begin) / (double)(ROUNDS / key_count), set.count);
    }
    route_set_free(&set);
    router_destroy(router);
    return 0;
}
