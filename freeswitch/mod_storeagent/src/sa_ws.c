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
    unsigned ping_ms, ping_timeout_ms;
    size_t max_queue_bytes, max_text_bytes;
    /* service thread only */
    struct lws *wsi;
    lws_usec_t last_rx_us; /* last data or pong from the peer */
    int ping_due, connect_tried, gone; /* gone: no wsi now and never again */
    char *text; /* incoming text message being reassembled */
    size_t text_len;
    int text_oversize;
    /* handlers run holding cb_lock; sa_ws_destroy takes it to detach, so none runs after destroy returns */
    pthread_mutex_t cb_lock;
    int cb_detached;
    pthread_mutex_t lock; /* guards the queue, the flags below, stats */
    sa_qmsg_t *q_head, *q_tail;
    size_t q_bytes;
    int closing, closed, opened, detached, close_code;
    char close_reason[128];
    sa_ws_stats_t st;
    /* attention stack (lock-free, many producers, the service thread consumes) */
    struct sa_ws *attn_next;
    int attn;
};

/* One lws context and one service thread for every connection: started on first connect, stopped by
 * sa_ws_shutdown. Other threads never call lws except lws_cancel_service; they push the connection on the
 * attention stack and the service thread does the lws work. */
static struct {
    pthread_mutex_t lock; /* start / stop only: never on the send path */
    struct lws_context *ctx;
    pthread_t thread;
    int running, stopping;
    sa_ws_t *attn;
} hub = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, NULL};

static void ws_free(sa_ws_t *ws);

/* Asks the service thread to look at ws. Only the first push onto an empty stack wakes it: one wake-up per
 * service round whatever the number of calls. */
static void attention(sa_ws_t *ws)
{
    if (__atomic_exchange_n(&ws->attn, 1, __ATOMIC_ACQ_REL)) return; /* queued already: it will see our change */
    sa_ws_t *head = __atomic_load_n(&hub.attn, __ATOMIC_RELAXED);
    do {
        ws->attn_next = head;
    } while (!__atomic_compare_exchange_n(&hub.attn, &head, ws, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    if (!head) lws_cancel_service(hub.ctx); /* wakes the service thread: LWS_CALLBACK_EVENT_WAIT_CANCELLED */
}

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
    attention(ws);
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
/* Handlers run under cb_lock and not at all once sa_ws_destroy detached them. */
#define DISPATCH(ws, fn, ...)                                                                                   \
    do {                                                                                                        \
        pthread_mutex_lock(&(ws)->cb_lock);                                                                     \
        if (!(ws)->cb_detached && (ws)->h.fn) (ws)->h.fn((ws)->h.ud, __VA_ARGS__);                              \
        pthread_mutex_unlock(&(ws)->cb_lock);                                                                   \
    } while (0)

static void finish(sa_ws_t *ws, int code, const char *reason)
{
    pthread_mutex_lock(&ws->lock);
    int already = ws->closed, opened = ws->opened;
    ws->closed = 1;
    if (!already) {
        ws->close_code = code;
        snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&ws->lock);
    if (!already) DISPATCH(ws, on_close, opened, code, ws->close_reason);
}

/* Service thread: frees a destroyed connection once lws holds no reference to it and it is off the stack. */
static int maybe_free(sa_ws_t *ws)
{
    pthread_mutex_lock(&ws->lock);
    int can = ws->detached && ws->gone && !__atomic_load_n(&ws->attn, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&ws->lock);
    if (can) ws_free(ws);
    return can;
}

static void on_receive(sa_ws_t *ws, struct lws *wsi, const void *in, size_t len)
{
    if (lws_frame_is_binary(wsi)) {
        if (len) DISPATCH(ws, on_binary, in, len);
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
    } else {
        ws->text[ws->text_len] = '\0';
        DISPATCH(ws, on_text, ws->text, ws->text_len);
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

static const struct lws_protocols protocols[];

static void start_connect(sa_ws_t *ws)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = hub.ctx;
    ci.address = ws->url.host;
    ci.port = ws->url.port;
    ci.path = ws->url.path;
    ci.host = ws->url.host;
    ci.origin = ws->url.host;
    ci.ssl_connection = ws->url.tls ? LCCSCF_USE_SSL : 0;
    ci.protocol = NULL; /* no subprotocol: the agent endpoint does not negotiate one */
    ci.local_protocol_name = protocols[0].name;
    ci.ietf_version_or_minus_one = -1;
    ci.opaque_user_data = ws;
    ci.pwsi = &ws->wsi;
    if (!lws_client_connect_via_info(&ci)) {
        /* lws reported CONNECTION_ERROR already, or nothing: either way there is no wsi now */
        ws->wsi = NULL;
        ws->gone = 1;
        finish(ws, -1, "connect failed to start");
    }
}

/* Service thread: what other threads asked for (connect, data to send, close) since the last round. */
static void service_attention(void)
{
    sa_ws_t *ws = __atomic_exchange_n(&hub.attn, NULL, __ATOMIC_ACQ_REL);
    while (ws) {
        sa_ws_t *next = ws->attn_next;
        __atomic_store_n(&ws->attn, 0, __ATOMIC_RELEASE); /* before reading its state: later changes re-push */
        pthread_mutex_lock(&ws->lock);
        int closing = ws->closing, opened = ws->opened, closed = ws->closed;
        int queued = ws->q_head != NULL;
        pthread_mutex_unlock(&ws->lock);
        if (!ws->connect_tried) {
            ws->connect_tried = 1;
            if (closing) {
                ws->gone = 1;
                finish(ws, -1, "stopped before connecting");
            } else {
                start_connect(ws);
            }
        } else if (ws->wsi && !closed) {
            if (closing && !opened) { /* still connecting: nothing to flush, drop it now */
                lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
                finish(ws, -1, "stopped before connecting");
            } else if (opened && (closing || queued || ws->ping_due)) {
                lws_callback_on_writable(ws->wsi);
            }
        } else if (ws->wsi && closing) { /* closed by the peer, not yet destroyed: hurry it */
            lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        }
        maybe_free(ws);
        ws = next;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) { /* not about one connection: another thread asked */
        service_attention();
        return 0;
    }
    sa_ws_t *ws = wsi ? lws_get_opaque_user_data(wsi) : NULL;
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
        pthread_mutex_lock(&ws->lock);
        ws->opened = 1;
        pthread_mutex_unlock(&ws->lock);
        ws->last_rx_us = lws_now_usecs();
        if (ws->ping_ms || ws->ping_timeout_ms) lws_set_timer_usecs(wsi, (lws_usec_t)timer_ms(ws) * 1000);
        pthread_mutex_lock(&ws->cb_lock);
        if (!ws->cb_detached && ws->h.on_open) ws->h.on_open(ws->h.ud);
        pthread_mutex_unlock(&ws->cb_lock);
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
            pthread_mutex_lock(&ws->lock);
            ws->close_code = b[0] << 8 | b[1];
            pthread_mutex_unlock(&ws->lock);
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        finish(ws, -1, in && len ? (const char *)in : (in ? (const char *)in : "connection failed"));
        break;
    case LWS_CALLBACK_CLIENT_CLOSED: {
        pthread_mutex_lock(&ws->lock);
        int code = ws->close_code;
        pthread_mutex_unlock(&ws->lock);
        finish(ws, code ? code : 1006, code ? "closed" : "closed without close frame");
        break;
    }
    case LWS_CALLBACK_WSI_DESTROY:
        /* The last callback for this wsi. A connection killed while still connecting gets no CONNECTION_ERROR in
         * every lws version: finish covers it. */
        lws_set_opaque_user_data(wsi, NULL);
        ws->wsi = NULL;
        ws->gone = 1;
        finish(ws, -1, "connection destroyed");
        maybe_free(ws);
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

static void *service_main(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&hub.stopping, __ATOMIC_ACQUIRE))
        if (lws_service(hub.ctx, 0) < 0) break;
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

/* Under hub.lock. The first connection's connect timeout is the context's (the module passes one value). */
static int hub_start(unsigned connect_timeout_s)
{
    if (hub.running) return 0;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.connect_timeout_secs = connect_timeout_s;
    info.timeout_secs = connect_timeout_s;
    info.fd_limit_per_thread = SA_WS_MAX_CONNECTIONS + 16; /* not the process fd limit (huge tables) */
    info.count_threads = 1;
    /* OpenSSL is initialised here, once per process, not per call; wss:// needs the client TLS context. */
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    hub.ctx = lws_create_context(&info);
    if (!hub.ctx) return -1;
    hub.stopping = 0;
    if (pthread_create(&hub.thread, NULL, service_main, NULL) != 0) {
        lws_context_destroy(hub.ctx);
        hub.ctx = NULL;
        return -1;
    }
    hub.running = 1;
    return 0;
}

void sa_ws_shutdown(void)
{
    pthread_mutex_lock(&hub.lock);
    if (hub.running) {
        __atomic_store_n(&hub.stopping, 1, __ATOMIC_RELEASE);
        lws_cancel_service(hub.ctx);
        pthread_join(hub.thread, NULL);
        /* Destroys the wsis still closing; their WSI_DESTROY frees the connections already destroyed. */
        lws_context_destroy(hub.ctx);
        hub.ctx = NULL;
        sa_ws_t *ws = __atomic_exchange_n(&hub.attn, NULL, __ATOMIC_ACQ_REL);
        while (ws) {
            sa_ws_t *next = ws->attn_next;
            __atomic_store_n(&ws->attn, 0, __ATOMIC_RELEASE);
            ws->gone = 1; /* no context, no wsi */
            maybe_free(ws);
            ws = next;
        }
        hub.running = 0;
    }
    pthread_mutex_unlock(&hub.lock);
}

static void ws_free(sa_ws_t *ws)
{
    free_queue(ws);
    pthread_mutex_destroy(&ws->lock);
    pthread_mutex_destroy(&ws->cb_lock);
    free(ws->text);
    free(ws);
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
    if (pthread_mutex_init(&ws->cb_lock, NULL) != 0) {
        pthread_mutex_destroy(&ws->lock);
        free(ws->text);
        free(ws);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg->first_text) {
        size_t len = strlen(cfg->first_text);
        sa_qmsg_t *m = malloc(sizeof(*m) + LWS_PRE + len);
        if (!m) {
            ws_free(ws);
            set_err(err, errlen, "out of memory");
            return NULL;
        }
        m->next = NULL;
        m->binary = 0;
        m->len = len;
        memcpy(m->data + LWS_PRE, cfg->first_text, len);
        ws->q_head = ws->q_tail = m;
        ws->q_bytes = len;
    }
    return ws;
}

int sa_ws_connect(const sa_ws_config_t *cfg, const sa_ws_handlers_t *h, sa_ws_t **out, char *err, size_t errlen)
{
    if (!out) return set_err(err, errlen, "internal: no output");
    sa_ws_t *ws = create(cfg, h, err, errlen);
    *out = ws;
    if (!ws) return -1;
    pthread_mutex_lock(&hub.lock);
    int rc = hub_start(cfg->connect_timeout_s);
    pthread_mutex_unlock(&hub.lock);
    if (rc != 0) {
        *out = NULL;
        ws_free(ws);
        return set_err(err, errlen, "websocket service could not start");
    }
    attention(ws); /* the service thread connects it */
    return 0;
}

int sa_ws_is_closed(sa_ws_t *ws)
{
    if (!ws) return 1;
    pthread_mutex_lock(&ws->lock);
    int done = ws->closed;
    pthread_mutex_unlock(&ws->lock);
    return done;
}

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
    /* Detach first: once this returns no handler runs, so the caller may free what they use. A connection that
     * had not finished reports its close here, once, as it always did. */
    pthread_mutex_lock(&ws->cb_lock);
    pthread_mutex_lock(&ws->lock);
    int already = ws->closed, opened = ws->opened;
    ws->closed = 1;
    ws->closing = 1;
    if (!already) {
        ws->close_code = opened ? 1000 : -1;
        snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", opened ? "stopped" : "stopped before connecting");
    }
    pthread_mutex_unlock(&ws->lock);
    if (!already && ws->h.on_close) ws->h.on_close(ws->h.ud, opened, ws->close_code, ws->close_reason);
    ws->cb_detached = 1;
    pthread_mutex_unlock(&ws->cb_lock);
    /* The service thread closes the wsi (close frame when open) and frees ws when lws is done with it. The push
     * happens under ws->lock so that maybe_free cannot see `detached` before it. */
    pthread_mutex_lock(&ws->lock);
    ws->detached = 1;
    attention(ws);
    pthread_mutex_unlock(&ws->lock);
}
