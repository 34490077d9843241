/* One call's audio stream: websocket transport + protocol + uplink framer + playout buffer + resamplers.
 * The narrow C API the FreeSWITCH glue (and the test harness) drive; no FreeSWITCH headers needed. */
#ifndef SA_CALL_H
#define SA_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "sa_playout.h"

typedef enum {
    SA_EV_CONNECT,    /* websocket open, start message queued first */
    SA_EV_DISCONNECT, /* websocket closed after it was open (code, detail) */
    SA_EV_ERROR,      /* websocket never opened (detail says why) */
    SA_EV_MARK,       /* mark played or cleared (mark_name, mark_event) */
    SA_EV_CLEAR,      /* the agent's clear was applied: the next tick plays silence */
    SA_EV_PAUSE,      /* the agent's pause was applied: the next tick plays silence, the queue is kept */
    SA_EV_RESUME,     /* the agent's resume was applied: the next tick continues where the pause held */
    SA_EV_MALFORMED   /* a downlink text message was dropped (detail says why) */
} sa_event_kind_t;

typedef struct {
    sa_event_kind_t kind;
    int code;            /* DISCONNECT: websocket close code (1006 = no close frame) */
    const char *detail;  /* ERROR, DISCONNECT, MALFORMED */
    const char *mark_name;
    sa_mark_event_t mark_event;
} sa_event_t;

/* Runs on the websocket thread or the tick thread; must not block for long. */
typedef void (*sa_event_fn)(void *ud, const sa_event_t *ev);

typedef struct {
    const char *uuid, *url, *token;
    unsigned ws_rate;           /* rate on the websocket: 8000 or 16000 */
    unsigned call_rate;         /* rate the channel reads/writes L16 at (8000..48000) */
    unsigned prebuffer_ms;      /* 0..60; default 40 when 0 is not wanted: see SA_CALL_DEFAULTS */
    unsigned max_buffer_ms;     /* cap on queued agent speech */
    unsigned stats_interval_ms; /* uplink stats message period; 0 = never */
    unsigned connect_timeout_s;
    sa_event_fn on_event;
    void *ud;
    unsigned ping_interval_ms;  /* websocket ping when nothing arrived for this long; 0 = SA_DEFAULT_PING_MS */
    unsigned ping_timeout_ms;   /* nothing received (pong or data) for this long ends the stream; 0 = default */
} sa_call_config_t;

#define SA_DEFAULT_PREBUFFER_MS 40u
#define SA_DEFAULT_MAX_BUFFER_MS 120000u /* a whole reply sent faster than real time fits */
#define SA_DEFAULT_STATS_MS 1000u
#define SA_DEFAULT_CONNECT_TIMEOUT_S 5u
#define SA_DEFAULT_PING_MS 500u
#define SA_DEFAULT_PING_TIMEOUT_MS 2000u /* an agent node gone without a FIN: dead air for at most this long */

typedef struct {
    uint64_t up_frames_real, up_frames_silence, up_dropped_samples;
    uint64_t down_bytes, underruns, overflow_bytes, played_samples, buffered_samples;
    uint64_t marks_played, marks_cleared, clears, malformed, unknown, ws_dropped_msgs;
    uint64_t pauses, resumes; /* pause/resume messages (and API calls) applied */
    int paused;
} sa_call_stats_t;

typedef struct sa_call sa_call_t;

/* Validates and allocates; NULL with `err` naming the field on bad config. Nothing connects yet. */
sa_call_t *sa_call_new(const sa_call_config_t *cfg, char *err, size_t errlen);

/* Connects in the background (start message first). 0, or -1 with `err`. Call once. */
int sa_call_start(sa_call_t *c, char *err, size_t errlen);

/* Caller audio at call_rate from the media thread; never blocks (drops and counts when busy). */
void sa_call_feed(sa_call_t *c, const int16_t *pcm, size_t n);

/* Reads ONE frame of caller audio (L16 at call_rate, mono) into buf (room for cap samples). The contract is that
 * of FreeSWITCH 1.10.12's switch_core_media_bug_read(bug, frame, SWITCH_TRUE) on a READ-stream bug: > 0 samples
 * of one whole frame; 0 when less than a frame is buffered; < 0 on error. The drain must not rely on the source
 * ever running dry: with fill=SWITCH_FALSE the same function returns a frame of filler forever. */
typedef long (*sa_read_frame_fn)(void *src, int16_t *buf, size_t cap);

#define SA_DRAIN_MAX_FRAMES 1u        /* per media-bug READ callback: FreeSWITCH buffers one frame per callback */
#define SA_DRAIN_BUF_SAMPLES 4096u    /* SWITCH_RECOMMENDED_BUFFER_SIZE / 2: 60 ms at 48 kHz fits */

/* From the media bug's READ callback (media thread): reads at most SA_DRAIN_MAX_FRAMES frames from `read` and
 * feeds them up. Returns the number of frames fed. Never loops on the source. */
size_t sa_call_drain(sa_call_t *c, sa_read_frame_fn read, void *src);

/* Once per 20 ms on the module's own clock: sends due uplink frames and stats, fills `out` with exactly
 * `n` samples of playout at call_rate (n = call_rate / 50). Returns the number of real (non-silence) samples. */
size_t sa_call_tick(sa_call_t *c, int16_t *out, size_t n);

/* Drops queued agent speech now (API `clear`); pending marks are reported cleared. */
void sa_call_clear(sa_call_t *c);

/* Holds / continues playout (API `pause` / `resume`, same as the agent's messages): see sa_playout_pause. */
void sa_call_pause(sa_call_t *c);
void sa_call_resume(sa_call_t *c);

/* 1 once the websocket is gone: the writer must stop writing into the call. */
int sa_call_closed(sa_call_t *c);

void sa_call_stats(sa_call_t *c, sa_call_stats_t *out);

/* Closes the websocket (events may still fire during this call), waits for its thread, frees everything. */
void sa_call_free(sa_call_t *c);

#endif
