/* Uplink framer: caller audio pushed whenever the media bug reads it, sent as 20 ms frames on the module's own
 * clock. When the caller's RTP pauses (silence suppression, hold) the clock keeps the cadence with silence, so the
 * agent's end-of-turn timing never waits for packets that will not come. Thread-safe. */
#ifndef SA_UPLINK_H
#define SA_UPLINK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sa_uplink sa_uplink_t;

#define SA_UPLINK_MAX_FRAMES 2 /* frames one tick can return (one late frame caught up) */

typedef struct {
    uint64_t frames_real, frames_silence;
    uint64_t dropped_samples; /* backlog trimmed (latency bound) or pushes refused while the lock was busy */
} sa_uplink_stats_t;

/* rate: samples/s of the pushed audio; max_backlog_ms: queued audio beyond this is trimmed (oldest first). */
sa_uplink_t *sa_uplink_new(unsigned rate, unsigned max_backlog_ms);
void sa_uplink_free(sa_uplink_t *up);

size_t sa_uplink_frame_samples(const sa_uplink_t *up);

/* Appends caller audio. With try_only (media callbacks), a busy lock drops the audio instead of waiting.
 * Returns 0 when queued, 1 when dropped because the lock was busy, -1 on bad arguments. */
int sa_uplink_push(sa_uplink_t *up, const int16_t *pcm, size_t n, int try_only);

/* Once per 20 ms tick. Writes 0..SA_UPLINK_MAX_FRAMES frames into `frames` (room for that many) and returns the
 * count: a frame when one is queued (two when behind); nothing when sa_uplink_take sent audio since the last tick;
 * otherwise nothing on the first short tick (late audio gets one tick of grace) and a frame of (partial audio +)
 * silence from the second short tick on. */
size_t sa_uplink_tick(sa_uplink_t *up, int16_t *frames);

/* Media path (never blocks: trylock): takes the whole frames queued now, at most SA_UPLINK_MAX_FRAMES, so caller
 * audio leaves when FreeSWITCH reads it instead of on the next tick (barge-in latency). The next tick counts that
 * period as served: no grace used, no silence inserted. Returns the frame count (0 when busy or short). */
size_t sa_uplink_take(sa_uplink_t *up, int16_t *frames);

void sa_uplink_stats(sa_uplink_t *up, sa_uplink_stats_t *out);

#endif
