/* Strict parsing of the API command `uuid_storeagent <uuid> start <ws-url> <8000|16000> <token> | stop | clear | pause | resume`.
 * Returns on the first invalid argument with a message naming it. */
#ifndef SA_ARGS_H
#define SA_ARGS_H

#include <stddef.h>

#include "sa_ws.h"

#define SA_USAGE "<uuid> start <ws-url> <8000|16000> <token> | <uuid> stop | <uuid> clear | <uuid> pause | <uuid> resume"

typedef enum { SA_CMD_START = 1, SA_CMD_STOP, SA_CMD_CLEAR, SA_CMD_PAUSE, SA_CMD_RESUME } sa_cmd_t;

typedef struct {
    sa_cmd_t cmd;
    char uuid[65];
    char url[1024];
    unsigned rate;
    char token[513];
} sa_args_t;

/* 0 on success; -1 with `err` ("<field>: <reason>") otherwise. */
int sa_args_parse(const char *cmdline, sa_args_t *out, char *err, size_t errlen);

#endif
