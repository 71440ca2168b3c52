/* broker/model/reply.c: formatting of AMQP exceptions. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>

#include "spec.h"

int reply_fail(struct reply_error *err, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    err->code = code;
    err->method_id = method_id;
    const char *name = spec_reply_code_name(code);
    int n = snprintf(err->text, sizeof err->text, "%s - ", name ? name : "ERROR");
    if (n < 0 || (size_t)n >= sizeof err->text)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text + n, sizeof err->text - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}
