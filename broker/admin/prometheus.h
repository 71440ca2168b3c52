/* broker/admin/prometheus.h: the Prometheus endpoint (prometheus_port, 15692), with
 * rabbitmq_prometheus's metric names and labels so RabbitMQ's Grafana dashboards work.
 * GET /metrics: queue metrics summed over every queue (RabbitMQ's default); GET
 * /metrics/per-object: one series per queue, labelled vhost and queue. Text exposition format
 * 0.0.4. No authentication, as rabbitmq_prometheus. It reads the broker through introspect.h
 * and does not go through the management API's router. */
#ifndef WARREN_PROMETHEUS_H
#define WARREN_PROMETHEUS_H

#include "http_server.h"

/* Requests carry no body; anything larger than this is refused before it is stored. */
#define PROMETHEUS_MAX_BODY 4096u

/* The HTTP door: an http_handler_fn with ctx = the struct server * to report on (which must
 * outlive the listener). Answers 200 with the metrics, 404 for other paths, 405 for methods
 * other than GET and HEAD, 500 when out of memory. */
void prometheus_http_handler(void *ctx, const struct http_request *req, struct http_response *res);

#endif
