/* The two ways a call used to hang, without FreeSWITCH:
 * - the media-bug drain: FreeSWITCH 1.10.12's switch_core_media_bug_read(…, SWITCH_FALSE) on a READ-only bug returns
 *   a full frame of filler forever, so a drain that loops until the source runs dry never returns. sa_call_drain
 *   must end on a source that always has a frame.
 * - an agent node that vanishes without a FIN: a peer that keeps the TCP connection but never answers a ping must
 *   end the stream (DISCONNECT, reason "ping timeout"); a peer that answers pings must not. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sa_call.h"
#include "sa_ws.h"

/* -------------------------------------------------------------------------------------------- drain */
typedef struct {
    int calls;
    long answer;   /* what every read returns: samples, 0 or -1 */
    int16_t value; /* sample value written */
} source_t;

static long read_frame(void *src, int16_t *buf, size_t cap)
{
    source_t *s = src;
    s->calls++;
    if (s->answer <= 0) return s->answer;
    size_t n = (size_t)s->answer < cap ? (size_t)s->answer : cap;
    for (size_t i = 0; i < n; i++) buf[i] = s->value;
    return s->answer; /* may exceed cap: the drain must refuse it */
}

static sa_call_t *offline_call(unsigned call_rate)
{
    char err[128];
    sa_call_config_t c = {"call-1", "ws://127.0.0.1:1/", "tok", 8000, call_rate, SA_DEFAULT_PREBUFFER_MS,
                          SA_DEFAULT_MAX_BUFFER_MS, 0, 2, NULL, NULL, 0, 0};
    sa_call_t *call = sa_call_new(&c, err, sizeof(err));
    assert_non_null(call);
    return call; /* never started: ticks run the uplink framer, nothing is sent */
}

static uint64_t real_frames_after_ticks(sa_call_t *call, int ticks, size_t n)
{
    int16_t out[960];
    for (int i = 0; i < ticks; i++) sa_call_tick(call, out, n);
    sa_call_stats_t st;
    sa_call_stats(call, &st);
    return st.up_frames_real;
}

static void drain_ends_on_a_source_that_always_has_a_frame(void **state)
{
    (void)state;
    sa_call_t *call = offline_call(8000);
    source_t filler = {0, 160, -1}; /* what SWITCH_FALSE returns on an empty buffer, forever */
    for (int cb = 1; cb <= 50; cb++) {
        assert_int_equal(sa_call_drain(call, read_frame, &filler), SA_DRAIN_MAX_FRAMES);
        assert_int_equal(filler.calls, cb * (int)SA_DRAIN_MAX_FRAMES);
    }
    /* what it read went up: one frame per callback, and the uplink stays bounded */
    assert_true(real_frames_after_ticks(call, 20, 160) >= 1);
    sa_call_free(call);
}

static void drain_stops_when_the_source_has_no_whole_frame_or_fails(void **state)
{
    (void)state;
    sa_call_t *call = offline_call(16000);
    source_t empty = {0, 0, 0};
    assert_int_equal(sa_call_drain(call, read_frame, &empty), 0);
    assert_int_equal(empty.calls, 1);
    source_t failing = {0, -1, 0};
    assert_int_equal(sa_call_drain(call, read_frame, &failing), 0);
    assert_int_equal(failing.calls, 1);
    assert_int_equal(real_frames_after_ticks(call, 5, 320), 0);
    sa_call_free(call);
}

static void drain_refuses_a_frame_larger_than_its_buffer(void **state)
{
    (void)state;
    sa_call_t *call = offline_call(8000);
    source_t liar = {0, (long)SA_DRAIN_BUF_SAMPLES + 1, 7};
    assert_int_equal(sa_call_drain(call, read_frame, &liar), 0);
    assert_int_equal(sa_call_drain(NULL, read_frame, &liar), 0);
    assert_int_equal(sa_call_drain(call, NULL, &liar), 0);
    sa_call_free(call);
}

/* --------------------------------------------------------------------------- fake websocket peer */
typedef struct {
    int listen_fd, port;
    int answer_pings;
    volatile int stop;
    int peer_closed; /* the client closed the TCP connection */
    pthread_t thread;
} peer_t;

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int handshake(int fd)
{
    char req[4096];
    size_t len = 0;
    while (len < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (r <= 0) return -1;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    const char *k = strcasestr(req, "Sec-WebSocket-Key:");
    if (!k) return -1;
    k += strlen("Sec-WebSocket-Key:");
    while (*k == ' ') k++;
    char key[128];
    size_t kl = strcspn(k, "\r\n");
    if (kl >= 64) return -1;
    snprintf(key, sizeof(key), "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, k);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)key, strlen(key), md);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char acc[32];
    size_t o = 0;
    for (size_t i = 0; i < SHA_DIGEST_LENGTH; i += 3) {
        unsigned v = (unsigned)md[i] << 16 | (i + 1 < SHA_DIGEST_LENGTH ? (unsigned)md[i + 1] << 8 : 0) |
                     (i + 2 < SHA_DIGEST_LENGTH ? md[i + 2] : 0);
        acc[o++] = b64[(v >> 18) & 63];
        acc[o++] = b64[(v >> 12) & 63];
        acc[o++] = i + 1 < SHA_DIGEST_LENGTH ? b64[(v >> 6) & 63] : '=';
        acc[o++] = i + 2 < SHA_DIGEST_LENGTH ? b64[v & 63] : '=';
    }
    acc[o] = '\0';
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    return send(fd, resp, (size_t)n, 0) == n ? 0 : -1;
}

/* Reads the client's (masked) frames; answers pings when asked to, otherwise stays silent but connected, as a
 * peer whose host vanished looks to TCP. */
static void *peer_main(void *arg)
{
    peer_t *p = arg;
    int fd = accept(p->listen_fd, NULL, NULL);
    if (fd < 0 || handshake(fd) != 0) { if (fd >= 0) close(fd); return NULL; }
    struct timeval tv = {0, 100 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (!p->stop) {
        unsigned char h[2];
        ssize_t r = recv(fd, h, 2, 0);
        if (r == 0) { p->peer_closed = 1; break; }
        if (r < 0) continue; /* timeout: check stop */
        if (r == 1 && read_full(fd, h + 1, 1) != 0) { p->peer_closed = 1; break; }
        uint64_t len = h[1] & 0x7f;
        if (len == 126) {
            unsigned char e[2];
            if (read_full(fd, e, 2) != 0) break;
            len = (uint64_t)e[0] << 8 | e[1];
        } else if (len == 127) {
            unsigned char e[8];
            if (read_full(fd, e, 8) != 0) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | e[i];
        }
        unsigned char mask[4];
        if (len > 65536 || read_full(fd, mask, 4) != 0) break;
        unsigned char payload[65536];
        if (len && read_full(fd, payload, (size_t)len) != 0) break;
        for (uint64_t i = 0; i < len; i++) payload[i] ^= mask[i % 4];
        if ((h[0] & 0x0f) == 0x9 && p->answer_pings && len <= 125) {
            unsigned char pong[2 + 125] = {0x8a, (unsigned char)len};
            memcpy(pong + 2, payload, (size_t)len);
            if (send(fd, pong, 2 + (size_t)len, 0) < 0) break;
        }
        if ((h[0] & 0x0f) == 0x8) { p->peer_closed = 1; break; }
    }
    close(fd);
    return NULL;
}

static void peer_start(peer_t *p, int answer_pings)
{
    memset(p, 0, sizeof(*p));
    p->answer_pings = answer_pings;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(p->listen_fd, 1), 0);
    socklen_t len = sizeof(a);
    getsockname(p->listen_fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer_t *p)
{
    p->stop = 1;
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
}

typedef struct {
    pthread_mutex_t lock;
    int connects, disconnects, code;
    char reason[64];
} events_t;

static void on_event(void *ud, const sa_event_t *ev)
{
    events_t *e = ud;
    pthread_mutex_lock(&e->lock);
    if (ev->kind == SA_EV_CONNECT) e->connects++;
    if (ev->kind == SA_EV_DISCONNECT || ev->kind == SA_EV_ERROR) {
        e->disconnects++;
        e->code = ev->code;
        snprintf(e->reason, sizeof(e->reason), "%s", ev->detail ? ev->detail : "");
    }
    pthread_mutex_unlock(&e->lock);
}

static int connects(events_t *e)
{
    pthread_mutex_lock(&e->lock);
    int n = e->connects;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* Runs the call's clock for up to `ticks` 20 ms ticks, stopping early once the stream closed. */
static void run_ticks(sa_call_t *call, int ticks)
{
    int16_t pcm[160] = {0}, out[160];
    for (int i = 0; i < ticks && !sa_call_closed(call); i++) {
        sa_call_feed(call, pcm, 160);
        sa_call_tick(call, out, 160);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static sa_call_t *call_to(peer_t *p, events_t *ev)
{
    char url[64], err[128];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/v1/calls/call-1/audio", p->port);
    /* stats every tick: uplink text as well as audio, the agent sends nothing back */
    sa_call_config_t c = {"call-1", url, "tok", 8000, 8000, SA_DEFAULT_PREBUFFER_MS, SA_DEFAULT_MAX_BUFFER_MS,
                          20, 2, on_event, ev, 100, 300};
    sa_call_t *call = sa_call_new(&c, err, sizeof(err));
    assert_non_null(call);
    assert_int_equal(sa_call_start(call, err, sizeof(err)), 0);
    for (int i = 0; i < 500 && !connects(ev) && !sa_call_closed(call); i++) run_ticks(call, 1);
    assert_int_equal(connects(ev), 1);
    return call;
}

static void silent_peer_ends_the_stream_with_ping_timeout(void **state)
{
    (void)state;
    peer_t p;
    peer_start(&p, 0);
    events_t ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sa_call_t *call = call_to(&p, &ev);
    run_ticks(call, 500); /* 10 s cap on a loaded machine; the timeout is 300 ms */
    assert_true(sa_call_closed(call));
    assert_int_equal(ev.disconnects, 1);
    assert_int_equal(ev.code, 1006);
    assert_string_equal(ev.reason, "ping timeout");
    sa_call_stats_t st;
    sa_call_stats(call, &st);
    sa_call_free(call);
    peer_stop(&p);
}

static void peer_answering_pings_keeps_the_stream(void **state)
{
    (void)state;
    peer_t p;
    peer_start(&p, 1);
    events_t ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sa_call_t *call = call_to(&p, &ev);
    run_ticks(call, 75); /* 1.5 s: five timeouts' worth of silence from the agent, pongs only */
    assert_false(sa_call_closed(call));
    assert_int_equal(ev.disconnects, 0);
    sa_call_free(call);
    assert_int_equal(ev.disconnects, 1); /* our own close, reported once */
    peer_stop(&p);
}

static void ping_settings_are_validated(void **state)
{
    (void)state;
    char err[128];
    sa_call_config_t c = {"call-1", "ws://127.0.0.1:1/", "tok", 8000, 8000, 40, SA_DEFAULT_MAX_BUFFER_MS, 0, 2,
                          NULL, NULL, 0, 50};
    assert_null(sa_call_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "ping_timeout_ms"));
    c.ping_timeout_ms = 0;
    c.ping_interval_ms = 5;
    assert_null(sa_call_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "ping_interval_ms"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drain_ends_on_a_source_that_always_has_a_frame),
        cmocka_unit_test(drain_stops_when_the_source_has_no_whole_frame_or_fails),
        cmocka_unit_test(drain_refuses_a_frame_larger_than_its_buffer),
        cmocka_unit_test(silent_peer_ends_the_stream_with_ping_timeout),
        cmocka_unit_test(peer_answering_pings_keeps_the_stream),
        cmocka_unit_test(ping_settings_are_validated),
    };
    int failed = cmocka_run_group_tests_name("drain_ping", tests, NULL, NULL);
    sa_ws_shutdown(); /* the shared service thread: after it every destroyed connection is freed (LSan) */
    return failed;
}
