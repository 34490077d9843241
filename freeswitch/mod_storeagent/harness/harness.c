/* Cross-language harness: the module's core (sa_call) without FreeSWITCH, driven on its own 20 ms clock the way
 * the module's writer thread drives it. Streams a caller WAV up, plays the agent's speech out, records what a
 * caller would have heard and when, and writes a JSON report.
 *
 *   harness <ws-url> <8000|16000> <token> <uuid> <caller.wav> <report.json> [played.raw]
 *
 * Runs until the agent closes the websocket or SA_HARNESS_MAX_S seconds (default 30) pass. played.raw gets the
 * agent's speech as played (real samples only, L16 LE), for order checks. Exit 0 when the run completed (the
 * report says how it went), 2 on bad arguments. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sa_call.h"
#include "sa_ws.h"
#include "wav.h"

typedef struct {
    pthread_mutex_t lock;
    uint64_t tick;        /* ticks completed; events are stamped with it */
    int connected, errored, disconnected, close_code;
    char detail[160];
    json_t *marks;        /* [{name, event, tick}] */
    json_t *clears;       /* [{tick, ...}] ; completed by the clock loop */
    json_t *pauses, *resumes; /* [{tick, t}] when the agent's pause / resume was applied */
    size_t clears_seen;
    uint64_t malformed;
} rec_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_event(void *ud, const sa_event_t *ev)
{
    rec_t *r = ud;
    pthread_mutex_lock(&r->lock);
    switch (ev->kind) {
    case SA_EV_CONNECT: r->connected = 1; break;
    case SA_EV_ERROR:
        r->errored = 1;
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "");
        break;
    case SA_EV_DISCONNECT:
        r->disconnected = 1;
        r->close_code = ev->code;
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "");
        break;
    case SA_EV_MARK:
        json_array_append_new(r->marks, json_pack("{s:s, s:s, s:I, s:f}", "name", ev->mark_name, "event",
                                                  ev->mark_event == SA_MARK_PLAYED ? "played" : "cleared", "tick",
                                                  (json_int_t)r->tick, "t", now_s()));
        break;
    case SA_EV_CLEAR:
        json_array_append_new(r->clears, json_pack("{s:I, s:f}", "tick", (json_int_t)r->tick, "t", now_s()));
        break;
    case SA_EV_PAUSE:
    case SA_EV_RESUME:
        json_array_append_new(ev->kind == SA_EV_PAUSE ? r->pauses : r->resumes,
                              json_pack("{s:I, s:f}", "tick", (json_int_t)r->tick, "t", now_s()));
        break;
    case SA_EV_MALFORMED: r->malformed++; break;
    }
    pthread_mutex_unlock(&r->lock);
}

static void add_ns(struct timespec *t, long ns)
{
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000L) { t->tv_nsec -= 1000000000L; t->tv_sec++; }
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 8) {
        fprintf(stderr, "usage: %s <ws-url> <8000|16000> <token> <uuid> <caller.wav> <report.json> [played.raw]\n",
                argv[0]);
        return 2;
    }
    unsigned rate = (unsigned)strtoul(argv[2], NULL, 10);
    char err[256];
    sa_wav_t wav;
    if (sa_wav_read(argv[5], &wav, err, sizeof(err)) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    if (wav.rate != rate) { fprintf(stderr, "wav: rate %u is not %u\n", wav.rate, rate); sa_wav_free(&wav); return 2; }
    FILE *played = argc == 8 ? fopen(argv[7], "wb") : NULL;
    double max_s = getenv("SA_HARNESS_MAX_S") ? atof(getenv("SA_HARNESS_MAX_S")) : 30.0;

    rec_t r = {.lock = PTHREAD_MUTEX_INITIALIZER, .marks = json_array(), .clears = json_array(),
               .pauses = json_array(), .resumes = json_array()};
    sa_call_config_t cfg = {argv[4], argv[1], argv[3], rate, rate, SA_DEFAULT_PREBUFFER_MS,
                            SA_DEFAULT_MAX_BUFFER_MS, SA_DEFAULT_STATS_MS, SA_DEFAULT_CONNECT_TIMEOUT_S, on_event, &r,
                            0, 0};
    sa_call_t *call = sa_call_new(&cfg, err, sizeof(err));
    if (!call || sa_call_start(call, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        sa_call_free(call);
        sa_wav_free(&wav);
        return 2;
    }
    size_t frame = rate / 50, fed = 0;
    int16_t out[960];
    uint64_t ticks = 0, audio_frames = 0, late_ticks = 0, first_audio_tick = 0;
    json_t *after_clear = json_array(); /* real samples in the first frame after each clear */
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    double t0 = now_s();
    while (!sa_call_closed(call) && now_s() - t0 < max_s) {
        if (fed < wav.n) { /* the caller's RTP: one packet per tick until the WAV ends, then none */
            size_t n = wav.n - fed < frame ? wav.n - fed : frame;
            sa_call_feed(call, wav.samples + fed, n);
            fed += n;
            /* tells the test when the caller has said everything, so it hangs up on that and not on a guess */
            if (fed == wav.n) { fputs("caller-audio-sent\n", stdout); fflush(stdout); }
        }
        pthread_mutex_lock(&r.lock);
        size_t clears = json_array_size(r.clears);
        pthread_mutex_unlock(&r.lock);
        size_t real = sa_call_tick(call, out, frame);
        for (; r.clears_seen < clears; r.clears_seen++) json_array_append_new(after_clear, json_integer((json_int_t)real));
        if (real) {
            if (!audio_frames) first_audio_tick = ticks;
            audio_frames++;
            if (played) fwrite(out, 2, real, played);
        }
        pthread_mutex_lock(&r.lock);
        r.tick = ++ticks;
        pthread_mutex_unlock(&r.lock);
        add_ns(&next, 20 * 1000 * 1000);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec + 20000000L))
            late_ticks++;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }
    sa_call_stats_t st;
    sa_call_stats(call, &st);
    sa_call_free(call); /* detaches from the websocket: no event can arrive after this */
    sa_ws_shutdown();
    if (played) fclose(played);

    json_t *rep = json_pack("{s:b, s:b, s:b, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                            "connected", r.connected, "error", r.errored, "disconnected", r.disconnected,
                            "close_code", r.close_code, "detail", r.detail, "ticks", (json_int_t)ticks,
                            "audio_frames", (json_int_t)audio_frames, "first_audio_tick",
                            (json_int_t)first_audio_tick, "late_ticks", (json_int_t)late_ticks, "played_samples",
                            (json_int_t)st.played_samples, "underruns", (json_int_t)st.underruns,
                            "uplink_frames_real", (json_int_t)st.up_frames_real, "uplink_frames_silence",
                            (json_int_t)st.up_frames_silence, "down_bytes", (json_int_t)st.down_bytes,
                            "malformed", (json_int_t)st.malformed, "marks_played", (json_int_t)st.marks_played,
                            "marks_cleared", (json_int_t)st.marks_cleared);
    json_object_set_new(rep, "marks", r.marks);
    json_object_set_new(rep, "clears", r.clears);
    json_object_set_new(rep, "pauses", r.pauses);
    json_object_set_new(rep, "resumes", r.resumes);
    json_object_set_new(rep, "real_samples_after_clear", after_clear);
    int rc = json_dump_file(rep, argv[6], JSON_INDENT(1)) == 0 ? 0 : 2;
    json_decref(rep);
    sa_wav_free(&wav);
    return rc;
}
