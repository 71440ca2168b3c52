/* protocol/proto.c: descriptions of the codec's status codes and the AMQP reply code each
 * one earns the peer. */
#include "proto.h"
#include "spec.h"

const char *proto_strerror(int err)
{
    switch (err) {
    case PROTO_INCOMPLETE:
        return "incomplete input";
    case PROTO_ERR_TRUNCATED:
        return "field runs past the end of its payload";
    case PROTO_ERR_FRAME_END:
        return "frame-end octet is not 0xCE";
    case PROTO_ERR_FRAME_SIZE:
        return "frame larger than the negotiated frame_max";
    case PROTO_ERR_FRAME_TYPE:
        return "unknown frame type";
    case PROTO_ERR_UNKNOWN_METHOD:
        return "unknown class or method id";
    case PROTO_ERR_BAD_TABLE:
        return "field table or array length inconsistent";
    case PROTO_ERR_FIELD_TYPE:
        return "unknown field value type";
    case PROTO_ERR_TOO_DEEP:
        return "field tables nested too deeply";
    case PROTO_ERR_NO_SPACE:
        return "output buffer too small";
    case PROTO_ERR_BAD_HEADER:
        return "bad protocol header";
    case PROTO_ERR_TOO_LONG:
        return "string too long for its wire type";
    default:
        return "unknown protocol status";
    }
}

uint16_t proto_error_reply_code(int err)
{
    switch (err) {
    case PROTO_ERR_TRUNCATED:
    case PROTO_ERR_BAD_TABLE:
    case PROTO_ERR_FIELD_TYPE:
    case PROTO_ERR_TOO_DEEP:
        return SPEC_SYNTAX_ERROR;
    case PROTO_ERR_FRAME_END:
    case PROTO_ERR_FRAME_SIZE:
    case PROTO_ERR_FRAME_TYPE:
    /* A bad protocol header is answered with our own header and a close, never a reply code;
     * should a caller need one, it is a framing fault. */
    case PROTO_ERR_BAD_HEADER:
        return SPEC_FRAME_ERROR;
    case PROTO_ERR_UNKNOWN_METHOD:
        return SPEC_NOT_IMPLEMENTED;
    default:
        /* NO_SPACE, TOO_LONG: our own encoder failed, not the peer. */
        return SPEC_INTERNAL_ERROR;
    }
}
