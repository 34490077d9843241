/* Websocket client transport over libwebsockets: one lws context and one service thread for all the connections
 * of the process (started on first connect). All handlers run on that service thread and must not block.
 * Sending is thread-safe and lock-free across connections (per-connection queue + attention stack). */
#ifndef SA_WS_H
#define SA_WS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int tls;          /* wss:// */
    char host[256];   /* without brackets for IPv6 literals */
    int port;         /* default 80 / 443 */
    char path[1024];  /* starts with '/' (query kept) */
} sa_ws_url_t;

/* Strict parse of ws://host[:port]/path or wss://...; returns 0, or -1 with `err` naming the part and reason. */
int sa_ws_parse_url(const char *url, sa_ws_url_t *out, char *err, size_t errlen);

typedef struct {
    void (*on_open)(void *ud);
    void (*on_binary)(void *ud, const uint8_t *data, size_t len); /* every received piece, in order */
    void (*on_text)(void *ud, const char *text, size_t len);      /* whole messages only */
    /* Exactly once per connection. opened=0: the connection never opened (reason says why). */
    void (*on_close)(void *ud, int opened, int code, const char *reason); /* reason SA_WS_REASON_TIMEOUT:
                                                                            the peer stopped answering pings */
    void *ud;
} sa_ws_handlers_t;

typedef struct {
    const char *url;
    const char *bearer_token;     /* sent as "Authorization: Bearer <token>"; NULL/empty sends none */
    const char *first_text;       /* queued before anything else (the start message) */
    unsigned connect_timeout_s;   /* TCP connect + handshake */
    size_t max_queue_bytes;       /* binary messages beyond this are dropped oldest-first */
    size_t max_text_bytes;        /* a longer incoming text message is dropped */
    unsigned ping_interval_ms;    /* ping when nothing arrived for this long; 0 = never ping */
    unsigned ping_timeout_ms;     /* nothing arrived (data or pong) for this long: close, code 1006; 0 = never */
} sa_ws_config_t;

#define SA_WS_REASON_TIMEOUT "ping timeout"

typedef struct sa_ws sa_ws_t;

typedef struct {
    uint64_t sent_msgs, dropped_msgs, oversize_text, pings_sent, pongs;
} sa_ws_stats_t;

/* Starts connecting in the background; *out is set before the service thread starts, so handlers may use it.
 * Returns 0, or -1 (with `err`, *out NULL) on a bad config or when no thread could start. */
int sa_ws_connect(const sa_ws_config_t *cfg, const sa_ws_handlers_t *h, sa_ws_t **out, char *err, size_t errlen);

/* Queue a message; 0 on success, -1 when closed or on bad arguments. */
int sa_ws_send_text(sa_ws_t *ws, const char *text, size_t len);
int sa_ws_send_binary(sa_ws_t *ws, const void *data, size_t len);

/* 1 once the connection is gone (closed by either side or never opened). */
int sa_ws_is_closed(sa_ws_t *ws);

void sa_ws_stats(sa_ws_t *ws, sa_ws_stats_t *out);

/* Closes (normal closure) and gives the connection to the service thread to free; does not wait for the close
 * handshake. on_close has run (once) when this returns and no handler runs after it. */
void sa_ws_destroy(sa_ws_t *ws);

/* Stops the service thread and the context (module unload, end of tests). Every connection destroyed first. */
void sa_ws_shutdown(void);

#define SA_WS_MAX_CONNECTIONS 4096 /* per process: the context's fd table */

/* Route libwebsockets' own log (process-wide); NULL restores stderr. Level bits are lws LLL_*. */
void sa_ws_set_log(void (*emit)(int level, const char *line));

#endif
