/* API argument parsing (see sa_args.h). */
#include "sa_args.h"

#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Copies the next whitespace-separated word; returns 0 when there is none, -1 when it does not fit. */
static int next_word(const char **p, char *buf, size_t cap)
{
    while (**p == ' ' || **p == '\t') (*p)++;
    size_t n = strcspn(*p, " \t");
    if (n == 0) return 0;
    if (n >= cap) return -1;
    memcpy(buf, *p, n);
    buf[n] = '\0';
    *p += n;
    return 1;
}

static int all_chars(const char *s, const char *extra)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr(extra, c);
        if (!ok) return 0;
    }
    return 1;
}

int sa_args_parse(const char *cmdline, sa_args_t *out, char *err, size_t errlen)
{
    if (!out) return fail(err, errlen, "internal: no output");
    memset(out, 0, sizeof(*out));
    if (!cmdline) return fail(err, errlen, "usage: " SA_USAGE);
    if (strpbrk(cmdline, "\r\n")) return fail(err, errlen, "arguments: line breaks are not allowed");
    const char *p = cmdline;
    char word[1024];
    int r = next_word(&p, out->uuid, sizeof(out->uuid));
    if (r == 0) return fail(err, errlen, "usage: " SA_USAGE);
    if (r < 0) return fail(err, errlen, "uuid: longer than 64 characters");
    if (!all_chars(out->uuid, "-_.")) return fail(err, errlen, "uuid: only letters, digits, '-', '_' and '.'");
    r = next_word(&p, word, 16);
    if (r == 0) return fail(err, errlen, "command: missing (start, stop, clear, pause or resume)");
    if (r > 0 && strcmp(word, "start") == 0) out->cmd = SA_CMD_START;
    else if (r > 0 && strcmp(word, "stop") == 0) out->cmd = SA_CMD_STOP;
    else if (r > 0 && strcmp(word, "clear") == 0) out->cmd = SA_CMD_CLEAR;
    else if (r > 0 && strcmp(word, "pause") == 0) out->cmd = SA_CMD_PAUSE;
    else if (r > 0 && strcmp(word, "resume") == 0) out->cmd = SA_CMD_RESUME;
    else return fail(err, errlen, "command: must be start, stop, clear, pause or resume");
    if (out->cmd == SA_CMD_START) {
        r = next_word(&p, out->url, sizeof(out->url));
        if (r == 0) return fail(err, errlen, "ws-url: missing");
        if (r < 0) return fail(err, errlen, "ws-url: longer than 1023 characters");
        sa_ws_url_t u;
        if (sa_ws_parse_url(out->url, &u, err, errlen) != 0) return -1;
        r = next_word(&p, word, 8);
        if (r == 0) return fail(err, errlen, "rate: missing (8000 or 16000)");
        if (r < 0 || (strcmp(word, "8000") != 0 && strcmp(word, "16000") != 0))
            return fail(err, errlen, "rate: must be 8000 or 16000");
        out->rate = word[0] == '8' ? 8000u : 16000u;
        r = next_word(&p, out->token, sizeof(out->token));
        if (r == 0) return fail(err, errlen, "token: missing");
        if (r < 0) return fail(err, errlen, "token: longer than 512 characters");
        /* RFC 6750 b64token characters: safe in a header and in logs. */
        if (!all_chars(out->token, "-._~+/=")) return fail(err, errlen, "token: only letters, digits and -._~+/=");
    }
    if (next_word(&p, word, sizeof(word)) != 0) return fail(err, errlen, "arguments: unexpected extra argument");
    return 0;
}
