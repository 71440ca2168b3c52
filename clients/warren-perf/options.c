/* Option parsing and validation; the defaults mirror RabbitMQ PerfTest where a counterpart exists. */
#include "options.h"

#include <amqp.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: warren-perf [options]\n"
    "  --uri URI               amqp://user:pass@host:port/vhost (default amqp://guest:guest@127.0.0.1:5672/;\n"
    "                          an empty vhost means \"/\"); amqps://... connects over TLS (port 5671)\n"
    "  --cacert FILE           with amqps: verify the server's certificate (and a host name) against the\n"
    "                          CA certificates in FILE (without it the server is not verified)\n"
    "  --producers N           publishing threads, one connection each (default 1)\n"
    "  --consumers N           consuming threads, one connection each (default 1)\n"
    "  --queue NAME            queue name (NAME.1..NAME.N with --queues N); default: server-named\n"
    "                          queues, deleted at the end\n"
    "  --queues N              number of queues; messages spread round-robin (default 1)\n"
    "  --exchange-type TYPE    direct, fanout or topic (default direct)\n"
    "  --exchange NAME         exchange name (default warren-perf.TYPE, .durable appended with --durable)\n"
    "  --size BYTES            body size; bodies of 8 bytes or more carry the send time (default 64)\n"
    "  --persistent            publish with delivery-mode 2\n"
    "  --durable               declare the exchange and queues durable\n"
    "  --confirm WINDOW        publisher confirms, at most WINDOW unconfirmed per producer\n"
    "  --prefetch N            basic.qos prefetch count per consumer (default 0 = unlimited)\n"
    "  --multi-ack N           ack every N deliveries with multiple=true (default 1)\n"
    "  --autoack               consume with no-ack\n"
    "  --rate R                messages per second per producer (default 0 = unlimited)\n"
    "  --time SECONDS          run time (default 10 unless --count is given)\n"
    "  --count N               messages per producer; with no producers, deliveries to wait for\n"
    "  --rpc                   request/reply: producers are clients waiting for each reply,\n"
    "                          consumers are servers answering through the default exchange\n"
    "  --idle-connections N    open N idle connections, hold them for --time seconds, close\n"
    "  --bindings N            topic exchange: N bindings \"perf.<i>.*\", each message matches one\n"
    "  --drain                 when --time is up, stop publishing but keep consuming until every\n"
    "                          published message has been delivered (closed accounting)\n"
    "  --delete-queues         delete named queues at the end too\n"
    "  --max-time SECONDS      hard bound on any run (default 600)\n"
    "  --stall-timeout SECONDS end a --count run when nothing moved for this long (default 10)\n"
    "  --frame-max BYTES       frame_max to ask for (default 131072)\n"
    "  --heartbeat SECONDS     heartbeat to ask for (default 0: off)\n"
    "  --marker-wait           after printing \"measure start\" and \"measure end\", wait for a line on\n"
    "                          stdin (a driver reads the broker's CPU between the markers)\n"
    "  --probe-queue NAME      only declare NAME passively and print its message count; exit 1\n"
    "                          when the broker does not answer or the queue does not exist\n";

enum option_id {
    OPT_URI = 256, OPT_PRODUCERS, OPT_CONSUMERS, OPT_QUEUE, OPT_QUEUES, OPT_EXCHANGE_TYPE, OPT_EXCHANGE,
    OPT_SIZE, OPT_PERSISTENT, OPT_DURABLE, OPT_CONFIRM, OPT_PREFETCH, OPT_MULTI_ACK, OPT_AUTOACK, OPT_RATE,
    OPT_TIME, OPT_COUNT, OPT_RPC, OPT_IDLE, OPT_BINDINGS, OPT_DELETE_QUEUES, OPT_MAX_TIME, OPT_STALL,
    OPT_FRAME_MAX, OPT_HEARTBEAT, OPT_DRAIN, OPT_MARKER_WAIT, OPT_PROBE_QUEUE, OPT_CACERT, OPT_HELP,
};

/* In the same order as enum option_id, which indexes it to name an option in messages. */
static const struct option long_options[] = {
    {"uri", required_argument, NULL, OPT_URI},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"consumers", required_argument, NULL, OPT_CONSUMERS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"exchange-type", required_argument, NULL, OPT_EXCHANGE_TYPE},
    {"exchange", required_argument, NULL, OPT_EXCHANGE},
    {"size", required_argument, NULL, OPT_SIZE},
    {"persistent", no_argument, NULL, OPT_PERSISTENT},
    {"durable", no_argument, NULL, OPT_DURABLE},
    {"confirm", required_argument, NULL, OPT_CONFIRM},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"multi-ack", required_argument, NULL, OPT_MULTI_ACK},
    {"autoack", no_argument, NULL, OPT_AUTOACK},
    {"rate", required_argument, NULL, OPT_RATE},
    {"time", required_argument, NULL, OPT_TIME},
    {"count", required_argument, NULL, OPT_COUNT},
    {"rpc", no_argument, NULL, OPT_RPC},
    {"idle-connections", required_argument, NULL, OPT_IDLE},
    {"bindings", required_argument, NULL, OPT_BINDINGS},
    {"delete-queues", no_argument, NULL, OPT_DELETE_QUEUES},
    {"max-time", required_argument, NULL, OPT_MAX_TIME},
    {"stall-timeout", required_argument, NULL, OPT_STALL},
    {"frame-max", required_argument, NULL, OPT_FRAME_MAX},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
    {"drain", no_argument, NULL, OPT_DRAIN},
    {"marker-wait", no_argument, NULL, OPT_MARKER_WAIT},
    {"probe-queue", required_argument, NULL, OPT_PROBE_QUEUE},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Parse a whole-string number in [min, max]; -1 with a message otherwise. */
static int parse_number(const char *name, const char *text, double min, double max, double *out)
{
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "warren-perf: --%s: '%s' is not a number in [%g, %g]\n", name, text, min, max);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_uri(const char *text, struct perf_config *config)
{
    char *copy = strdup(text);
    struct amqp_connection_info info;
    if (!copy || amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "warren-perf: --uri: cannot parse '%s'\n", text);
        free(copy);
        return -1;
    }
    snprintf(config->host, sizeof(config->host), "%s", info.host);
    config->port = info.port;
    config->tls = info.ssl;
    snprintf(config->user, sizeof(config->user), "%s", info.user);
    snprintf(config->password, sizeof(config->password), "%s", info.password);
    /* "amqp://host/" strictly names the empty vhost; every PerfTest user means "/". */
    snprintf(config->vhost, sizeof(config->vhost), "%s", info.vhost[0] ? info.vhost : "/");
    free(copy);
    return 0;
}

static int parse_exchange_type(const char *text, struct perf_config *config)
{
    if (strcmp(text, "direct") == 0)
        config->exchange_type = PERF_EXCHANGE_DIRECT;
    else if (strcmp(text, "fanout") == 0)
        config->exchange_type = PERF_EXCHANGE_FANOUT;
    else if (strcmp(text, "topic") == 0)
        config->exchange_type = PERF_EXCHANGE_TOPIC;
    else {
        fprintf(stderr, "warren-perf: --exchange-type: '%s' is not direct, fanout or topic\n", text);
        return -1;
    }
    return 0;
}

static void set_defaults(struct perf_config *config)
{
    *config = (struct perf_config){
        .producers = 1, .consumers = 1, .queue_count = 1, .exchange_type = PERF_EXCHANGE_DIRECT,
        .size = 64, .multi_ack = 1, .max_time = 600, .stall_timeout = 10, .frame_max = 131072,
    };
    parse_uri("amqp://guest:guest@127.0.0.1:5672/", config);
}

/* Cross-option rules, applied after every option is known. */
static int validate(struct perf_config *config, bool exchange_named)
{
    static const char *const type_names[] = {"direct", "fanout", "topic"};
    if (!exchange_named)
        snprintf(config->exchange_name, sizeof(config->exchange_name), "warren-perf.%s%s",
                 type_names[config->exchange_type], config->durable ? ".durable" : "");
    if (config->bindings > 0 && config->exchange_type != PERF_EXCHANGE_TOPIC) {
        fprintf(stderr, "warren-perf: --bindings needs --exchange-type topic\n");
        return -1;
    }
    if (config->rpc && (config->producers < 1 || config->consumers < 1)) {
        fprintf(stderr, "warren-perf: --rpc needs at least one producer (client) and one consumer (server)\n");
        return -1;
    }
    if (config->probe_queue)
        return 0;
    if (config->producers == 0 && config->consumers == 0 && config->idle_connections == 0) {
        fprintf(stderr, "warren-perf: nothing to do: no producers and no consumers\n");
        return -1;
    }
    if (config->prefetch > 0 && config->multi_ack > config->prefetch) {
        fprintf(stderr, "warren-perf: --multi-ack %d exceeds --prefetch %d (it would stall); using %d\n",
                config->multi_ack, config->prefetch, config->prefetch);
        config->multi_ack = config->prefetch;
    }
    if (config->time_limit == 0 && config->count == 0)
        config->time_limit = 10;
    if (config->time_limit > config->max_time)
        config->max_time = config->time_limit;
    return 0;
}

int options_parse(int argc, char **argv, struct perf_config *config)
{
    set_defaults(config);
    bool exchange_named = false;
    int id;
    while ((id = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        double v = 0;
        const char *name = id >= OPT_URI && id <= OPT_HELP ? long_options[id - OPT_URI].name : "?";
        int rc = 0;
        switch (id) {
        case OPT_URI: rc = parse_uri(optarg, config); break;
        case OPT_QUEUE: config->queue_name = optarg; break;
        case OPT_EXCHANGE_TYPE: rc = parse_exchange_type(optarg, config); break;
        case OPT_EXCHANGE:
            snprintf(config->exchange_name, sizeof(config->exchange_name), "%s", optarg);
            exchange_named = true;
            break;
        case OPT_PERSISTENT: config->persistent = true; break;
        case OPT_DURABLE: config->durable = true; break;
        case OPT_AUTOACK: config->autoack = true; break;
        case OPT_RPC: config->rpc = true; break;
        case OPT_DELETE_QUEUES: config->delete_queues = true; break;
        case OPT_DRAIN: config->drain = true; break;
        case OPT_MARKER_WAIT: config->marker_wait = true; break;
        case OPT_PROBE_QUEUE: config->probe_queue = optarg; break;
        case OPT_CACERT: config->cacert = optarg; break;
        case OPT_HELP: fputs(usage, stdout); return 1;
        case OPT_PRODUCERS: rc = parse_number(name, optarg, 0, 1000, &v); config->producers = (int)v; break;
        case OPT_CONSUMERS: rc = parse_number(name, optarg, 0, 1000, &v); config->consumers = (int)v; break;
        case OPT_QUEUES: rc = parse_number(name, optarg, 1, 100000, &v); config->queue_count = (int)v; break;
        case OPT_SIZE: rc = parse_number(name, optarg, 0, 1 << 30, &v); config->size = (size_t)v; break;
        case OPT_CONFIRM: rc = parse_number(name, optarg, 0, 1 << 24, &v); config->confirm_window = (int)v; break;
        case OPT_PREFETCH: rc = parse_number(name, optarg, 0, 65535, &v); config->prefetch = (int)v; break;
        case OPT_MULTI_ACK: rc = parse_number(name, optarg, 1, 65535, &v); config->multi_ack = (int)v; break;
        case OPT_RATE: rc = parse_number(name, optarg, 0, 1e9, &v); config->rate = v; break;
        case OPT_TIME: rc = parse_number(name, optarg, 0, 86400, &v); config->time_limit = v; break;
        case OPT_COUNT: rc = parse_number(name, optarg, 0, 1e15, &v); config->count = (uint64_t)v; break;
        case OPT_IDLE: rc = parse_number(name, optarg, 1, 1e6, &v); config->idle_connections = (int)v; break;
        case OPT_BINDINGS: rc = parse_number(name, optarg, 0, 1e7, &v); config->bindings = (int)v; break;
        case OPT_MAX_TIME: rc = parse_number(name, optarg, 1, 86400, &v); config->max_time = v; break;
        case OPT_STALL: rc = parse_number(name, optarg, 1, 86400, &v); config->stall_timeout = v; break;
        case OPT_FRAME_MAX: rc = parse_number(name, optarg, 4096, 1 << 30, &v); config->frame_max = (int)v; break;
        case OPT_HEARTBEAT: rc = parse_number(name, optarg, 0, 65535, &v); config->heartbeat = (int)v; break;
        default: fputs(usage, stderr); return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "warren-perf: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    return validate(config, exchange_named);
}
