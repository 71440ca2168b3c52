/* tests/fuzz/fuzz_mgmt.c: the management API's router and resources (broker/admin/mgmt*.c)
 * under hostile requests, through the admin-socket door (every right, so every handler is
 * reachable). An input is lines "METHOD PATH[?QUERY] [JSON BODY]", run in order against one
 * in-memory broker, so sequences (declare, bind, set a policy, delete the vhost) are explored.
 * A crash, a sanitizer report, a leak or a message left in memory at the end is a failure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_loop.h"
#include "fuzz_common.h"
#include "message.h"
#include "mgmt.h"
#include "server.h"

#define MAX_REQUESTS 32

static void run_line(struct mgmt *mgmt, char *line)
{
    char *method = line, *path = strchr(line, ' ');
    if (!path)
        return;
    *path++ = '\0';
    char *body_text = strchr(path, ' ');
    if (body_text)
        *body_text++ = '\0';
    json_t *body = NULL;
    if (body_text && *body_text) {
        json_error_t error;
        body = json_loads(body_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
        if (!body)
            return;
    }
    json_t *reply = NULL;
    unsigned status = mgmt_run(mgmt, method, path, body, &reply);
    FUZZ_CHECK(status >= 200 && status < 600);
    if (reply) {
        char *text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
        FUZZ_CHECK(text != NULL);
        free(text);
    }
    json_decref(reply);
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    struct server_config config;
    server_config_defaults(&config);
    config.listen = false;
    config.data_dir = NULL;
    struct event_loop *loop = loop_create();
    FUZZ_CHECK(loop != NULL);
    struct server *server = server_create(loop, &config);
    FUZZ_CHECK(server != NULL);
    struct mgmt *mgmt = mgmt_create(server);
    FUZZ_CHECK(mgmt != NULL);
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(text, "\n", &save); line && n < MAX_REQUESTS; line = strtok_r(NULL, "\n", &save), n++) {
        run_line(mgmt, line);
        FUZZ_CHECK(loop_run_once(loop, 0) == 0);
    }
    mgmt_destroy(mgmt);
    server_destroy(server);
    loop_destroy(loop);
    FUZZ_CHECK(message_memory_bytes() == 0);
    free(text);
    return 0;
}
