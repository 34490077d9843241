/* The audio websocket's JSON text messages (DESIGN.md "Audio websocket"): build uplink ones, parse downlink ones. */
#ifndef SA_PROTO_H
#define SA_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sa_playout.h"

#define SA_MARK_NAME_MAX 256 /* bytes, including the terminating NUL */

typedef enum {
    SA_MSG_INVALID = 0, /* not JSON, not an object, missing/ill-typed field: dropped and counted */
    SA_MSG_CLEAR,       /* {"type":"clear"} */
    SA_MSG_MARK,        /* {"type":"mark","name":".."} */
    SA_MSG_PAUSE,       /* {"type":"pause"}: hold playout, keep the queue and marks */
    SA_MSG_RESUME,      /* {"type":"resume"}: continue from the exact sample where the pause held it */
    SA_MSG_UNKNOWN      /* a well-formed message of a type this module does not know: ignored */
} sa_msg_type_t;

typedef struct {
    sa_msg_type_t type;
    char name[SA_MARK_NAME_MAX]; /* SA_MSG_MARK */
    char error[128];             /* SA_MSG_INVALID / SA_MSG_UNKNOWN: which field and why */
} sa_msg_t;

/* Parses one downlink text message. Always fills `out` (type SA_MSG_INVALID on bad args); returns out->type. */
sa_msg_type_t sa_proto_parse(const char *text, size_t len, sa_msg_t *out);

/* Uplink messages as malloc'd JSON text (caller frees); NULL on bad args or out of memory. */
char *sa_proto_start(const char *uuid, unsigned sample_rate);
char *sa_proto_mark_report(const char *name, sa_mark_event_t event);
char *sa_proto_stats(double buffered_ms, uint64_t underruns);

#endif
