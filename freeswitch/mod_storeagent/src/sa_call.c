/* One call's audio stream (see sa_call.h). Threads: the websocket service thread (downlink, events), the media
 * thread (sa_call_feed) and the module's 20 ms clock (sa_call_tick); the parts they share are thread-safe. */
#include "sa_call.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_proto.h"
#include "sa_resample.h"
#include "sa_uplink.h"
#include "sa_ws.h"

#define SA_MAX_RATE 48000u
#define SA_MAX_FRAME (SA_MAX_RATE / 50u)
#define SA_UPLINK_BACKLOG_MS 200u
#define SA_WS_QUEUE_BYTES (16000u * 2u) /* 1 s of 16 kHz audio waiting for a slow agent */
#define SA_WS_TEXT_BYTES 8192u

struct sa_call {
    char *uuid, *url, *token;
    unsigned ws_rate, call_rate, stats_every_ticks, connect_timeout_s, ping_ms, ping_timeout_ms;
    sa_event_fn on_event;
    void *ud;
    sa_playout_t *playout;       /* at ws_rate */
    sa_uplink_t *uplink;         /* at ws_rate */
    sa_resampler_t *up_rs;       /* call_rate -> ws_rate, media thread only */
    sa_resampler_t *down_rs;     /* ws_rate -> call_rate, tick thread only */
    sa_ws_t *ws;
    int started;                 /* atomic: ws is set (the media bug may feed before start) */
    pthread_mutex_t send_lock;   /* uplink take + send, so the media path and the tick never reorder frames */
    uint64_t ticks;
    /* counters touched from several threads: updated with __atomic builtins */
    uint64_t down_bytes, marks_played, marks_cleared, clears, malformed, unknown, pauses, resumes;
};

static void emit(sa_call_t *c, sa_event_kind_t kind, int code, const char *detail, const char *mark,
                 sa_mark_event_t mev)
{
    if (!c->on_event) return;
    sa_event_t ev = {kind, code, detail, mark, mev};
    c->on_event(c->ud, &ev);
}

static void count(uint64_t *ctr) { __atomic_add_fetch(ctr, 1, __ATOMIC_RELAXED); }
static uint64_t load(const uint64_t *ctr) { return __atomic_load_n(ctr, __ATOMIC_RELAXED); }

static int bad(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -1;
}

sa_call_t *sa_call_new(const sa_call_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg) { bad(err, errlen, "config: missing"); return NULL; }
    if (!cfg->uuid || !*cfg->uuid) { bad(err, errlen, "uuid: missing"); return NULL; }
    if (!cfg->url || !*cfg->url) { bad(err, errlen, "url: missing"); return NULL; }
    if (cfg->ws_rate != 8000 && cfg->ws_rate != 16000) { bad(err, errlen, "rate: must be 8000 or 16000"); return NULL; }
    if (cfg->call_rate < 8000 || cfg->call_rate > SA_MAX_RATE || cfg->call_rate % 50) {
        bad(err, errlen, "call_rate: must be 8000..48000 and a multiple of 50");
        return NULL;
    }
    if (cfg->prebuffer_ms > 60) { bad(err, errlen, "prebuffer_ms: must be 0..60"); return NULL; }
    if (cfg->max_buffer_ms < 1000) { bad(err, errlen, "max_buffer_ms: must be >= 1000"); return NULL; }
    if (cfg->connect_timeout_s == 0) { bad(err, errlen, "connect_timeout_s: must be > 0"); return NULL; }
    if (cfg->ping_timeout_ms && cfg->ping_timeout_ms < 100) {
        bad(err, errlen, "ping_timeout_ms: must be >= 100");
        return NULL;
    }
    if (cfg->ping_interval_ms && cfg->ping_interval_ms < 20) {
        bad(err, errlen, "ping_interval_ms: must be >= 20");
        return NULL;
    }
    sa_call_t *c = calloc(1, sizeof(*c));
    if (!c) { bad(err, errlen, "out of memory"); return NULL; }
    c->uuid = strdup(cfg->uuid);
    c->url = strdup(cfg->url);
    c->token = strdup(cfg->token ? cfg->token : "");
    c->ws_rate = cfg->ws_rate;
    c->call_rate = cfg->call_rate;
    c->stats_every_ticks = cfg->stats_interval_ms / 20u;
    c->connect_timeout_s = cfg->connect_timeout_s;
    c->ping_ms = cfg->ping_interval_ms ? cfg->ping_interval_ms : SA_DEFAULT_PING_MS;
    c->ping_timeout_ms = cfg->ping_timeout_ms ? cfg->ping_timeout_ms : SA_DEFAULT_PING_TIMEOUT_MS;
    c->on_event = cfg->on_event;
    c->ud = cfg->ud;
    sa_playout_config_t pc = {cfg->ws_rate, cfg->prebuffer_ms, cfg->max_buffer_ms};
    c->playout = sa_playout_new(&pc);
    c->uplink = sa_uplink_new(cfg->ws_rate, SA_UPLINK_BACKLOG_MS);
    c->up_rs = sa_resampler_new(cfg->call_rate, cfg->ws_rate);
    c->down_rs = sa_resampler_new(cfg->ws_rate, cfg->call_rate);
    pthread_mutex_init(&c->send_lock, NULL);
    if (!c->uuid || !c->url || !c->token || !c->playout || !c->uplink || !c->up_rs || !c->down_rs) {
        sa_call_free(c);
        bad(err, errlen, "out of memory");
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------------------ websocket thread side */
static void on_mark(void *ud, const char *name, sa_mark_event_t event)
{
    sa_call_t *c = ud;
    count(event == SA_MARK_PLAYED ? &c->marks_played : &c->marks_cleared);
    char *json = sa_proto_mark_report(name, event);
    if (json) {
        sa_ws_send_text(c->ws, json, strlen(json));
        free(json);
    }
    emit(c, SA_EV_MARK, 0, NULL, name, event);
}

static void ws_open(void *ud) { emit(ud, SA_EV_CONNECT, 0, NULL, NULL, SA_MARK_PLAYED); }

static void ws_binary(void *ud, const uint8_t *data, size_t len)
{
    sa_call_t *c = ud;
    __atomic_add_fetch(&c->down_bytes, len, __ATOMIC_RELAXED);
    sa_playout_push(c->playout, data, len);
}

static void ws_text(void *ud, const char *text, size_t len)
{
    sa_call_t *c = ud;
    sa_msg_t msg;
    switch (sa_proto_parse(text, len, &msg)) {
    case SA_MSG_CLEAR:
        count(&c->clears);
        sa_playout_clear(c->playout, on_mark, c);
        emit(c, SA_EV_CLEAR, 0, NULL, NULL, SA_MARK_CLEARED);
        break;
    case SA_MSG_PAUSE:
        sa_call_pause(c);
        emit(c, SA_EV_PAUSE, 0, NULL, NULL, SA_MARK_PLAYED);
        break;
    case SA_MSG_RESUME:
        sa_call_resume(c);
        emit(c, SA_EV_RESUME, 0, NULL, NULL, SA_MARK_PLAYED);
        break;
    case SA_MSG_MARK:
        sa_playout_mark(c->playout, msg.name);
        break;
    case SA_MSG_UNKNOWN: /* forward compatible: a newer agent may send more types */
        count(&c->unknown);
        break;
    default:
        count(&c->malformed);
        emit(c, SA_EV_MALFORMED, 0, msg.error, NULL, SA_MARK_PLAYED);
        break;
    }
}

static void ws_close(void *ud, int opened, int code, const char *reason)
{
    emit(ud, opened ? SA_EV_DISCONNECT : SA_EV_ERROR, code, reason, NULL, SA_MARK_PLAYED);
}

int sa_call_start(sa_call_t *c, char *err, size_t errlen)
{
    if (!c) return bad(err, errlen, "call: missing");
    if (c->ws) return bad(err, errlen, "call: already started");
    char *start = sa_proto_start(c->uuid, c->ws_rate);
    if (!start) return bad(err, errlen, "uuid: cannot be encoded as JSON");
    sa_ws_config_t wc = {c->url,           c->token,         start,     c->connect_timeout_s, SA_WS_QUEUE_BYTES,
                         SA_WS_TEXT_BYTES, c->ping_ms, c->ping_timeout_ms};
    sa_ws_handlers_t h = {ws_open, ws_binary, ws_text, ws_close, c};
    int rc = sa_ws_connect(&wc, &h, &c->ws, err, errlen);
    free(start);
    if (rc == 0) __atomic_store_n(&c->started, 1, __ATOMIC_RELEASE);
    return rc;
}

/* ------------------------------------------------------------------------------- media and clock side */
void sa_call_feed(sa_call_t *c, const int16_t *pcm, size_t n)
{
    if (!c || !pcm) return;
    int16_t buf[SA_MAX_FRAME * 2 + 8];
    while (n) {
        size_t take = n < SA_MAX_FRAME ? n : SA_MAX_FRAME;
        long got = sa_resampler_process(c->up_rs, pcm, take, buf, sizeof(buf) / sizeof(buf[0]));
        if (got > 0) sa_uplink_push(c->uplink, buf, (size_t)got, 1);
        pcm += take;
        n -= take;
    }
}

static void send_pcm(sa_call_t *c, const int16_t *pcm, size_t n);

/* Media path: whole frames go to the agent as FreeSWITCH reads them, not on the next tick (up to 20 ms sooner:
 * barge-in is measured from the caller's first syllable). Never blocks: busy means the tick sends them. */
static void uplink_now(sa_call_t *c)
{
    if (!__atomic_load_n(&c->started, __ATOMIC_ACQUIRE)) return;
    if (pthread_mutex_trylock(&c->send_lock) != 0) return;
    int16_t up[SA_UPLINK_MAX_FRAMES * SA_MAX_FRAME];
    size_t fs = sa_uplink_frame_samples(c->uplink);
    size_t frames = sa_uplink_take(c->uplink, up);
    for (size_t i = 0; i < frames; i++) send_pcm(c, up + i * fs, fs);
    pthread_mutex_unlock(&c->send_lock);
}

size_t sa_call_drain(sa_call_t *c, sa_read_frame_fn read, void *src)
{
    if (!c || !read) return 0;
    int16_t buf[SA_DRAIN_BUF_SAMPLES];
    size_t fed = 0;
    /* Bounded by a count, not by the source's answer: a source that always has a frame (FreeSWITCH's filler)
     * must not keep the session thread here. */
    for (unsigned i = 0; i < SA_DRAIN_MAX_FRAMES; i++) {
        long got = read(src, buf, SA_DRAIN_BUF_SAMPLES);
        if (got <= 0 || (size_t)got > SA_DRAIN_BUF_SAMPLES) break;
        sa_call_feed(c, buf, (size_t)got);
        fed++;
    }
    if (fed) uplink_now(c);
    return fed;
}

static void send_pcm(sa_call_t *c, const int16_t *pcm, size_t n)
{
    uint8_t le[SA_MAX_FRAME * 2];
    for (size_t i = 0; i < n; i++) { /* the wire is little-endian whatever the host is */
        le[2 * i] = (uint8_t)((uint16_t)pcm[i] & 0xff);
        le[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
    }
    sa_ws_send_binary(c->ws, le, n * 2);
}

size_t sa_call_tick(sa_call_t *c, int16_t *out, size_t n)
{
    if (!c || !out || n == 0 || n > SA_MAX_FRAME) return 0;
    int16_t up[SA_UPLINK_MAX_FRAMES * SA_MAX_FRAME];
    size_t fs = sa_uplink_frame_samples(c->uplink);
    pthread_mutex_lock(&c->send_lock);
    size_t frames = sa_uplink_tick(c->uplink, up);
    for (size_t i = 0; c->ws && i < frames; i++) send_pcm(c, up + i * fs, fs);
    pthread_mutex_unlock(&c->send_lock);

    size_t n_ws = n * c->ws_rate / c->call_rate;
    int16_t ws_pcm[SA_MAX_FRAME];
    size_t real_ws = sa_playout_read(c->playout, ws_pcm, n_ws, on_mark, c);
    long got = sa_resampler_process(c->down_rs, ws_pcm, n_ws, out, n);
    if (got < 0) got = 0;
    if ((size_t)got < n) memset(out + got, 0, (n - (size_t)got) * sizeof(int16_t));

    c->ticks++;
    if (c->ws && c->stats_every_ticks && c->ticks % c->stats_every_ticks == 0) {
        sa_playout_stats_t ps;
        sa_playout_stats(c->playout, &ps);
        char *json = sa_proto_stats((double)ps.buffered_samples * 1000.0 / c->ws_rate, ps.underruns);
        if (json) {
            sa_ws_send_text(c->ws, json, strlen(json));
            free(json);
        }
    }
    return real_ws * c->call_rate / c->ws_rate;
}

void sa_call_clear(sa_call_t *c)
{
    if (!c) return;
    count(&c->clears);
    sa_playout_clear(c->playout, on_mark, c);
}

void sa_call_pause(sa_call_t *c)
{
    if (!c) return;
    count(&c->pauses);
    sa_playout_pause(c->playout);
}

void sa_call_resume(sa_call_t *c)
{
    if (!c) return;
    count(&c->resumes);
    sa_playout_resume(c->playout);
}

int sa_call_closed(sa_call_t *c) { return !c || !c->ws || sa_ws_is_closed(c->ws); }

void sa_call_stats(sa_call_t *c, sa_call_stats_t *out)
{
    if (!c || !out) return;
    memset(out, 0, sizeof(*out));
    sa_uplink_stats_t us;
    sa_uplink_stats(c->uplink, &us);
    sa_playout_stats_t ps;
    sa_playout_stats(c->playout, &ps);
    out->up_frames_real = us.frames_real;
    out->up_frames_silence = us.frames_silence;
    out->up_dropped_samples = us.dropped_samples;
    out->down_bytes = load(&c->down_bytes);
    out->underruns = ps.underruns;
    out->overflow_bytes = ps.overflow_bytes;
    out->played_samples = ps.played_samples;
    out->buffered_samples = ps.buffered_samples;
    out->marks_played = load(&c->marks_played);
    out->marks_cleared = load(&c->marks_cleared);
    out->clears = load(&c->clears);
    out->malformed = load(&c->malformed);
    out->unknown = load(&c->unknown);
    out->pauses = load(&c->pauses);
    out->resumes = load(&c->resumes);
    out->paused = ps.paused;
    if (c->ws) {
        sa_ws_stats_t ws;
        sa_ws_stats(c->ws, &ws);
        out->ws_dropped_msgs = ws.dropped_msgs;
    }
}

void sa_call_free(sa_call_t *c)
{
    if (!c) return;
    sa_ws_destroy(c->ws); /* first: no websocket callback may run once the parts below are gone */
    sa_playout_free(c->playout);
    sa_uplink_free(c->uplink);
    sa_resampler_free(c->up_rs);
    sa_resampler_free(c->down_rs);
    pthread_mutex_destroy(&c->send_lock);
    free(c->uuid);
    free(c->url);
    free(c->token);
    free(c);
}
