/* broker/admin/mgmt_definitions.h: between the two halves of /api/definitions: export
 * (mgmt_definitions.c, with the routes) and import (mgmt_definitions_import.c). Both speak to
 * the broker only through the management API's own calls (mgmt_run), built with these. */
#ifndef WARREN_MGMT_DEFINITIONS_H
#define WARREN_MGMT_DEFINITIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "mgmt_internal.h"

#define PATH_CAP 3072

/* A path under construction: literal parts as given, names percent-encoded. */
struct path {
    char s[PATH_CAP];
    size_t len;
    bool overflow;
};

/* Appends lit as it is. */
void path_lit(struct path *p, const char *lit);
/* Appends "/" and the name (len bytes, any bytes) percent-encoded. */
void path_seg(struct path *p, const char *name, size_t len);
/* path_seg for a JSON string. */
void path_json(struct path *p, const json_t *name);
/* Runs one API call as the operator; returns the status and the reply (caller owns it). */
unsigned definitions_api(struct mgmt_call *call, const char *method, const struct path *p, json_t *body,
                         json_t **reply);
/* GET of a list; a resource this build does not serve (404) is an empty list. NULL on failure. */
json_t *definitions_api_list(struct mgmt_call *call, const struct path *p);
/* Does GET p answer 200? */
bool definitions_api_exists(struct mgmt_call *call, const struct path *p);

/* A new object holding item's members named in keys (NULL-ended), without "vhost" when
 * strip_vhost (the per-vhost shape). */
json_t *definitions_pick(const json_t *item, const char *const *keys, bool strip_vhost);
/* Is s a string starting with prefix? */
bool definitions_has_prefix(const json_t *s, const char *prefix);

/* POST /api/definitions (vhost NULL) or /api/definitions/VHOST: checks the whole file, reports
 * what Warren lacks, then applies it; the answer is left in call. */
void definitions_import(struct mgmt_call *call, const char *vhost);

#endif
