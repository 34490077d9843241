/* sa_ws.h over libwebsockets 4.x (Debian's). Only lws_cancel_service() is called from other threads; every other
 * lws call happens on the service thread, as libwebsockets requires. */
#include "sa_ws.h"

#include <ctype.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sa_msg {
    struct sa_msg *next;
    int binary;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
} sa_qmsg_t;

struct sa_ws {
    sa_ws_handlers_t h;
    sa_ws_url_t url;
    char auth[600];
    unsigned connect_timeout_s, ping_ms, ping_timeout_ms;
    size_t max_queue_bytes, max_text_bytes;
    lws_usec_t last_rx_us; /* service thread only: last data or pong from the peer */
    int ping_due;          /* service thread only */
    struct lws_context *ctx;
    struct lws *wsi; /* service thread only */
    pthread_t thread;
    pthread_mutex_t lock; /* guards the queue, closing, closed, stats */
    sa_qmsg_t *q_head, *q_tail;
    size_t q_bytes;
    int closing, closed, opened, close_code;
    char close_reason[128];
    char *text; /* incoming text message being reassembled (service thread only) */
    size_t text_len;
    int text_oversize;
    sa_ws_stats_t st;
};

static int set_err(char *err, size_t errlen, const char *what)
{
    if (err && errlen) snprintf(err, errlen, "%s", what);
    return -1;
}

int sa_ws_parse_url(const char *url, sa_ws_url_t *out, char *err, size_t errlen)
{
    if (!url || !out) return set_err(err, errlen, "url: missing");
    memset(out, 0, sizeof(*out));
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return set_err(err, errlen, "url: contains whitespace, control or non-ASCII characters");
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) { out->tls = 0; out->port = 80; p = url + 5; }
    else if (strncmp(url, "wss://", 6) == 0) { out->tls = 1; out->port = 443; p = url + 6; }
    else return set_err(err, errlen, "url: scheme must be ws:// or wss://");
    const char *host_end;
    const char *after;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end) return set_err(err, errlen, "url: unterminated [IPv6] host");
        p++;
        after = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?#");
        after = host_end;
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0) return set_err(err, errlen, "url: host missing");
    if (hlen >= sizeof(out->host)) return set_err(err, errlen, "url: host too long");
    memcpy(out->host, p, hlen);
    p = after;
    if (*p == ':') {
        p++;
        long port = 0;
        const char *d = p;
        while (isdigit((unsigned char)*p) && port <= 65535) port = port * 10 + (*p++ - '0');
        if (p == d || port < 1 || port > 65535 || (*p && *p != '/' && *p != '?'))
            return set_err(err, errlen, "url: port must be 1..65535");
        out->port = (int)port;
    }
    if (*p == '#') return set_err(err, errlen, "url: fragments are not allowed");
    if (*p && *p != '/' && *p != '?') return set_err(err, errlen, "url: unexpected character after host");
    if (strchr(p, '#')) return set_err(err, errlen, "url: fragments are not allowed");
    int n = snprintf(out->path, sizeof(out->path), "%s%s", *p == '/' ? "" : "/", p);
    if (n < 0 || (size_t)n >= sizeof(out->path)) return set_err(err, errlen, "url: path too long");
    return 0;
}

/* ------------------------------------------------------------------------------------------------ queue */
static int enqueue(sa_ws_t *ws, int binary, const void *data, size_t len)
{
    if (!ws || (!data && len)) return -1;
    sa_qmsg_t *m = malloc(sizeof(*m) + LWS_PRE + len);
    if (!m) return -1;
    m->next = NULL;
    m->binary = binary;
    m->len = len;
    if (len) memcpy(m->data + LWS_PRE, data, len);
    pthread_mutex_lock(&ws->lock);
    if (ws->closed || ws->closing) {
        pthread_mutex_unlock(&ws->lock);
        free(m);
        return -1;
    }
    /* A slow peer must not grow memory without bound: drop the oldest audio first, never text. */
    while (binary && ws->q_bytes + len > ws->max_queue_bytes) {
        sa_qmsg_t **pp = &ws->q_head, *prev = NULL;
        while (*pp && !(*pp)->binary) { prev = *pp; pp = &(*pp)->next; }
        sa_qmsg_t *victim = *pp;
        if (!victim) break;
        *pp = victim->next;
        if (ws->q_tail == victim) ws->q_tail = prev;
        ws->q_bytes -= victim->len;
        ws->st.dropped_msgs++;
        free(victim);
    }
    if (ws->q_tail) ws->q_tail->next = m; else ws->q_head = m;
    ws->q_tail = m;
    ws->q_bytes += len;
    pthread_mutex_unlock(&ws->lock);
    lws_cancel_service(ws->ctx); /* wakes the service thread: LWS_CALLBACK_EVENT_WAIT_CANCELLED */
    return 0;
}

static sa_qmsg_t *dequeue(sa_ws_t *ws, int *more)
{
    pthread_mutex_lock(&ws->lock);
    sa_qmsg_t *m = ws->q_head;
    if (m) {
        ws->q_head = m->next;
        if (!ws->q_head) ws->q_tail = NULL;
        ws->q_bytes -= m->len;
    }
    *more = ws->q_head != NULL;
    pthread_mutex_unlock(&ws->lock);
    return m;
}

static void free_queue(sa_ws_t *ws)
{
    sa_qmsg_t *m = ws->q_head;
    while (m) { sa_qmsg_t *n = m->next; free(m); m = n; }
    ws->q_head = ws->q_tail = NULL;
    ws->q_bytes = 0;
}

int sa_ws_send_text(sa_ws_t *ws, const char *text, size_t len) { return enqueue(ws, 0, text, len); }
int sa_ws_send_binary(sa_ws_t *ws, const void *data, size_t len) { return enqueue(ws, 1, data, len); }

/* ------------------------------------------------------------------------------------------ lws callback */
static void finish(sa_ws_t *ws, int code, const char *reason)
{
    pthread_mutex_lock(&ws->lock);
    int already = ws->closed;
    ws->closed = 1;
    if (!already) {
        ws->close_code = code;
        snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&ws->lock);
    ws->wsi = NULL;
    if (!already && ws->h.on_close) ws->h.on_close(ws->h.ud, ws->opened, code, ws->close_reason);
}

static void on_receive(sa_ws_t *ws, struct lws *wsi, const void *in, size_t len)
{
    if (lws_frame_is_binary(wsi)) {
        if (ws->h.on_binary && len) ws->h.on_binary(ws->h.ud, in, len);
        return;
    }
    if (lws_is_first_fragment(wsi)) { ws->text_len = 0; ws->text_oversize = 0; }
    if (!ws->text_oversize && ws->text_len + len <= ws->max_text_bytes) {
        memcpy(ws->text + ws->text_len, in, len);
        ws->text_len += len;
    } else {
        ws->text_oversize = 1;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return;
    if (ws->text_oversize) {
        pthread_mutex_lock(&ws->lock);
        ws->st.oversize_text++;
        pthread_mutex_unlock(&ws->lock);
    } else if (ws->h.on_text) {
        ws->text[ws->text_len] = '\0';
        ws->h.on_text(ws->h.ud, ws->text, ws->text_len);
    }
    ws->text_len = 0;
}

static int on_writeable(sa_ws_t *ws, struct lws *wsi)
{
    pthread_mutex_lock(&ws->lock);
    int closing = ws->closing;
    pthread_mutex_unlock(&ws->lock);
    if (closing) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"stop", 4);
        return -1;
    }
    if (ws->ping_due) { /* one write per WRITEABLE: the ping first, the queue on the next one */
        unsigned char ping[LWS_PRE + 1];
        ws->ping_due = 0;
        if (lws_write(wsi, ping + LWS_PRE, 0, LWS_WRITE_PING) < 0) return -1;
        pthread_mutex_lock(&ws->lock);
        ws->st.pings_sent++;
        int queued = ws->q_head != NULL;
        pthread_mutex_unlock(&ws->lock);
        if (queued) lws_callback_on_writable(wsi);
        return 0;
    }
    int more = 0;
    sa_qmsg_t *m = dequeue(ws, &more);
    if (!m) return 0;
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    free(m);
    if (n < 0) return -1;
    pthread_mutex_lock(&ws->lock);
    ws->st.sent_msgs++;
    pthread_mutex_unlock(&ws->lock);
    if (more) lws_callback_on_writable(wsi);
    return 0;
}

/* Timer period: fine enough that neither the ping nor the timeout is late by more than a quarter. */
static unsigned timer_ms(const sa_ws_t *ws)
{
    unsigned a = ws->ping_ms ? ws->ping_ms : ws->ping_timeout_ms;
    unsigned b = ws->ping_timeout_ms ? ws->ping_timeout_ms / 4 : a;
    unsigned t = a < b ? a : b;
    return t < 20 ? 20 : t;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    sa_ws_t *ws = lws_context_user(lws_get_context(wsi));
    if (!ws) return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!ws->auth[0]) break;
        unsigned char **p = (unsigned char **)in, *end = (*p) + len;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"Authorization:", (unsigned char *)ws->auth,
                                        (int)strlen(ws->auth), p, end))
            return -1;
        break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        ws->opened = 1;
        ws->last_rx_us = lws_now_usecs();
        if (ws->ping_ms || ws->ping_timeout_ms) lws_set_timer_usecs(wsi, (lws_usec_t)timer_ms(ws) * 1000);
        if (ws->h.on_open) ws->h.on_open(ws->h.ud);
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        ws->last_rx_us = lws_now_usecs();
        on_receive(ws, wsi, in, len);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        ws->last_rx_us = lws_now_usecs();
        pthread_mutex_lock(&ws->lock);
        ws->st.pongs++;
        pthread_mutex_unlock(&ws->lock);
        break;
    case LWS_CALLBACK_TIMER: {
        /* Liveness: TCP alone cannot tell that an agent node vanished without a FIN (no RST ever comes), so
         * anything from the peer within ping_timeout_ms keeps the stream; silence beyond it ends the stream. */
        lws_usec_t idle_ms = (lws_now_usecs() - ws->last_rx_us) / 1000;
        if (ws->ping_timeout_ms && idle_ms >= (lws_usec_t)ws->ping_timeout_ms) {
            finish(ws, 1006, SA_WS_REASON_TIMEOUT);
            return -1; /* lws drops the connection; CLIENT_CLOSED finds it finished */
        }
        if (ws->ping_ms && idle_ms >= (lws_usec_t)ws->ping_ms) {
            ws->ping_due = 1;
            lws_callback_on_writable(wsi);
        }
        lws_set_timer_usecs(wsi, (lws_usec_t)timer_ms(ws) * 1000);
        break;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(ws, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            ws->close_code = b[0] << 8 | b[1];
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        finish(ws, -1, in && len ? (const char *)in : (in ? (const char *)in : "connection failed"));
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        finish(ws, ws->close_code ? ws->close_code : 1006, ws->close_code ? "closed" : "closed without close frame");
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        /* A connection killed while still connecting gets no CONNECTION_ERROR in every lws version. */
        if (wsi == ws->wsi) finish(ws, -1, ws->closing ? "stopped before connecting" : "connection destroyed");
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* Another thread queued data or asked to close. */
        if (ws->wsi) {
            pthread_mutex_lock(&ws->lock);
            int closing = ws->closing;
            pthread_mutex_unlock(&ws->lock);
            /* Still connecting: nothing to flush, close it now (it is not the wsi being serviced here). */
            if (closing && !ws->opened) lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
            else if (ws->opened) lws_callback_on_writable(ws->wsi);
            if (closing && !ws->opened) finish(ws, -1, "stopped before connecting");
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"storeagent-audio", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int is_done(sa_ws_t *ws)
{
    pthread_mutex_lock(&ws->lock);
    int done = ws->closed;
    pthread_mutex_unlock(&ws->lock);
    return done;
}

static void *service_main(void *arg)
{
    sa_ws_t *ws = arg;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = ws->ctx;
    ci.address = ws->url.host;
    ci.port = ws->url.port;
    ci.path = ws->url.path;
    ci.host = ws->url.host;
    ci.origin = ws->url.host;
    ci.ssl_connection = ws->url.tls ? LCCSCF_USE_SSL : 0;
    ci.protocol = NULL; /* no subprotocol: the agent endpoint does not negotiate one */
    ci.local_protocol_name = protocols[0].name;
    ci.ietf_version_or_minus_one = -1;
    ci.pwsi = &ws->wsi;
    if (!lws_client_connect_via_info(&ci)) finish(ws, -1, "connect failed to start");
    while (!is_done(ws))
        if (lws_service(ws->ctx, 0) < 0) break;
    finish(ws, -1, "service loop failed");
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- public */
static void (*log_emit)(int level, const char *line);
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static int log_configured;
static void default_log(void)
{
    if (!__atomic_load_n(&log_configured, __ATOMIC_ACQUIRE)) lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
}
static void log_trampoline(int level, const char *line) { if (log_emit) log_emit(level, line); }

void sa_ws_set_log(void (*emit)(int level, const char *line))
{
    log_emit = emit;
    __atomic_store_n(&log_configured, 1, __ATOMIC_RELEASE);
    lws_set_log_level(LLL_ERR | LLL_WARN, emit ? log_trampoline : NULL);
}

static sa_ws_t *create(const sa_ws_config_t *cfg, const sa_ws_handlers_t *h, char *err, size_t errlen)
{
    pthread_once(&log_once, default_log); /* lws' default NOTICE lines would flood the host's stderr */
    if (!cfg || !h) { set_err(err, errlen, "config: missing"); return NULL; }
    if (cfg->max_queue_bytes == 0 || cfg->max_text_bytes == 0 || cfg->connect_timeout_s == 0) {
        set_err(err, errlen, "config: queue/text limits and connect timeout must be > 0");
        return NULL;
    }
    if (cfg->bearer_token && strpbrk(cfg->bearer_token, "\r\n")) {
        set_err(err, errlen, "token: contains a line break");
        return NULL;
    }
    sa_ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws) { set_err(err, errlen, "out of memory"); return NULL; }
    if (sa_ws_parse_url(cfg->url, &ws->url, err, errlen) != 0) { free(ws); return NULL; }
    if (cfg->bearer_token && *cfg->bearer_token) {
        int n = snprintf(ws->auth, sizeof(ws->auth), "Bearer %s", cfg->bearer_token);
        if (n < 0 || (size_t)n >= sizeof(ws->auth)) {
            free(ws);
            set_err(err, errlen, "token: longer than 512 bytes");
            return NULL;
        }
    }
    ws->h = *h;
    ws->connect_timeout_s = cfg->connect_timeout_s;
    ws->ping_ms = cfg->ping_interval_ms;
    ws->ping_timeout_ms = cfg->ping_timeout_ms;
    ws->max_queue_bytes = cfg->max_queue_bytes;
    ws->max_text_bytes = cfg->max_text_bytes;
    ws->text = malloc(cfg->max_text_bytes + 1);
    if (!ws->text || pthread_mutex_init(&ws->lock, NULL) != 0) {
        free(ws->text);
        free(ws);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = ws;
    info.gid = -1;
    info.uid = -1;
    info.connect_timeout_secs = cfg->connect_timeout_s;
    info.timeout_secs = cfg->connect_timeout_s;
    info.fd_limit_per_thread = 8; /* one connection per context: do not size tables for the process fd limit */
    if (ws->url.tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    ws->ctx = lws_create_context(&info);
    if (!ws->ctx) {
        pthread_mutex_destroy(&ws->lock);
        free(ws->text);
        free(ws);
        set_err(err, errlen, "websocket context could not be created");
        return NULL;
    }
    if (cfg->first_text && enqueue(ws, 0, cfg->first_text, strlen(cfg->first_text)) != 0) {
        lws_context_destroy(ws->ctx);
        pthread_mutex_destroy(&ws->lock);
        free_queue(ws);
        free(ws->text);
        free(ws);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    return ws;
}

int sa_ws_connect(const sa_ws_config_t *cfg, const sa_ws_handlers_t *h, sa_ws_t **out, char *err, size_t errlen)
{
    if (!out) return set_err(err, errlen, "internal: no output");
    sa_ws_t *ws = create(cfg, h, err, errlen);
    *out = ws;
    if (!ws) return -1;
    if (pthread_create(&ws->thread, NULL, service_main, ws) != 0) {
        *out = NULL;
        lws_context_destroy(ws->ctx);
        pthread_mutex_destroy(&ws->lock);
        free_queue(ws);
        free(ws->text);
        free(ws);
        return set_err(err, errlen, "websocket thread could not start");
    }
    return 0;
}

int sa_ws_is_closed(sa_ws_t *ws) { return ws ? is_done(ws) : 1; }

void sa_ws_stats(sa_ws_t *ws, sa_ws_stats_t *out)
{
    if (!ws || !out) return;
    pthread_mutex_lock(&ws->lock);
    *out = ws->st;
    pthread_mutex_unlock(&ws->lock);
}

void sa_ws_destroy(sa_ws_t *ws)
{
    if (!ws) return;
    pthread_mutex_lock(&ws->lock);
    ws->closing = 1;
    pthread_mutex_unlock(&ws->lock);
    lws_cancel_service(ws->ctx);
    pthread_join(ws->thread, NULL);
    lws_context_destroy(ws->ctx);
    free_queue(ws);
    pthread_mutex_destroy(&ws->lock);
    free(ws->text);
    free(ws);
}
