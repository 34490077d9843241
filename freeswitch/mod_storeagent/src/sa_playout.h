/* Playout buffer: agent speech in (any chunk size, odd bytes kept), 20 ms frames out on the caller's clock.
 * FreeSWITCH-independent; thread-safe (one internal mutex, held only for memcpy-sized work). */
#ifndef SA_PLAYOUT_H
#define SA_PLAYOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sa_playout sa_playout_t;

typedef enum { SA_MARK_PLAYED = 0, SA_MARK_CLEARED = 1 } sa_mark_event_t;

/* Called (with the buffer's lock released) for every mark that playout passed or a clear dropped, in order. */
typedef void (*sa_mark_fn)(void *ud, const char *name, sa_mark_event_t event);

typedef struct {
    unsigned rate;          /* samples per second of the pushed L16 (8000 or 16000 on a call) */
    unsigned prebuffer_ms;  /* audio gathered before playout (re)starts; 0..60 */
    unsigned max_ms;        /* hard cap on queued audio; excess bytes are dropped and counted */
} sa_playout_config_t;

typedef struct {
    uint64_t buffered_samples;
    uint64_t underruns;      /* frames that ran dry mid-speech (not at a mark, not during the prebuffer) */
    uint64_t overflow_bytes; /* pushed bytes dropped because max_ms was reached */
    uint64_t played_samples; /* real (non-silence) samples handed out */
    uint64_t marks_pending;
    int playing;             /* 1 once the prebuffer filled, 0 while gathering */
    int paused;              /* 1 between sa_playout_pause and sa_playout_resume / sa_playout_clear */
    uint64_t pauses;         /* sa_playout_pause calls that paused (not already paused) */
} sa_playout_stats_t;

/* Returns NULL on invalid config (rate 0, prebuffer_ms > 60, max_ms < prebuffer_ms) or out of memory. */
sa_playout_t *sa_playout_new(const sa_playout_config_t *cfg);
void sa_playout_free(sa_playout_t *pb);

/* Appends raw little-endian L16 bytes; an odd trailing byte waits for the next push. Returns 0, -1 on bad args. */
int sa_playout_push(sa_playout_t *pb, const uint8_t *bytes, size_t len);

/* Queues a mark after all audio pushed so far. Returns 0, -1 on bad args or out of memory. */
int sa_playout_mark(sa_playout_t *pb, const char *name);

/* Drops all queued audio (and a pending odd byte); every pending mark is reported SA_MARK_CLEARED; ends a pause
 * (the next speech pushed plays normally). The next sa_playout_read returns silence: a clear is honoured within
 * one frame. Returns marks cleared. */
size_t sa_playout_clear(sa_playout_t *pb, sa_mark_fn cb, void *ud);

/* Holds playout (barge-in onset): from the next read on, reads return silence and consume nothing, so queued
 * audio, the position inside it and every pending mark stay exactly as they were; pushes and marks still queue.
 * No underrun is counted and the prebuffer wait does not advance while paused. Idempotent. Returns 0, -1. */
int sa_playout_pause(sa_playout_t *pb);

/* Ends a pause: the next read continues from the exact sample where the pause stopped (no prebuffer wait when
 * playout was running). Idempotent; a resume without a pause does nothing. Returns 0, -1 on bad args. */
int sa_playout_resume(sa_playout_t *pb);

/* Fills exactly `nsamples` (silence where there is no audio) and reports marks that playout passed.
 * Returns how many samples were real audio. */
size_t sa_playout_read(sa_playout_t *pb, int16_t *out, size_t nsamples, sa_mark_fn cb, void *ud);

void sa_playout_stats(sa_playout_t *pb, sa_playout_stats_t *out);

#endif
