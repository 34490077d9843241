/* Uplink framer (see sa_uplink.h). */
#include "sa_uplink.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sa_uplink {
    pthread_mutex_t lock;
    int16_t *buf; /* linear buffer; frames are consumed from the front (memmove of <= a few frames) */
    size_t cap, count, frame;
    unsigned short_ticks;
    unsigned taken; /* frames sa_uplink_take sent since the last tick */
    uint64_t busy_dropped; /* updated atomically: counted without the lock */
    sa_uplink_stats_t st;
};

sa_uplink_t *sa_uplink_new(unsigned rate, unsigned max_backlog_ms)
{
    if (rate < 8000 || rate > 48000 || max_backlog_ms < 40) return NULL;
    sa_uplink_t *up = calloc(1, sizeof(*up));
    if (!up) return NULL;
    up->frame = rate / 50;
    up->cap = (size_t)rate * max_backlog_ms / 1000u;
    up->buf = malloc(up->cap * sizeof(int16_t));
    if (!up->buf || pthread_mutex_init(&up->lock, NULL) != 0) {
        free(up->buf);
        free(up);
        return NULL;
    }
    return up;
}

void sa_uplink_free(sa_uplink_t *up)
{
    if (!up) return;
    pthread_mutex_destroy(&up->lock);
    free(up->buf);
    free(up);
}

size_t sa_uplink_frame_samples(const sa_uplink_t *up) { return up ? up->frame : 0; }

static void drop_front(sa_uplink_t *up, size_t n)
{
    memmove(up->buf, up->buf + n, (up->count - n) * sizeof(int16_t));
    up->count -= n;
}

int sa_uplink_push(sa_uplink_t *up, const int16_t *pcm, size_t n, int try_only)
{
    if (!up || (!pcm && n)) return -1;
    if (try_only) {
        if (pthread_mutex_trylock(&up->lock) != 0) { /* never block a media thread behind the tick */
            __atomic_add_fetch(&up->busy_dropped, n, __ATOMIC_RELAXED);
            return 1;
        }
    } else {
        pthread_mutex_lock(&up->lock);
    }
    if (n > up->cap) { /* keep only the newest cap samples */
        up->st.dropped_samples += n - up->cap;
        pcm += n - up->cap;
        n = up->cap;
    }
    if (up->count + n > up->cap) { /* latency bound: the oldest audio goes */
        size_t excess = up->count + n - up->cap;
        up->st.dropped_samples += excess;
        drop_front(up, excess);
    }
    memcpy(up->buf + up->count, pcm, n * sizeof(int16_t));
    up->count += n;
    pthread_mutex_unlock(&up->lock);
    return 0;
}

size_t sa_uplink_tick(sa_uplink_t *up, int16_t *frames)
{
    if (!up || !frames) return 0;
    size_t out = 0;
    pthread_mutex_lock(&up->lock);
    if (up->count >= up->frame) {
        up->short_ticks = 0;
        while (out < SA_UPLINK_MAX_FRAMES && up->count >= up->frame) {
            memcpy(frames + out * up->frame, up->buf, up->frame * sizeof(int16_t));
            drop_front(up, up->frame);
            up->st.frames_real++;
            out++;
        }
    } else if (up->taken) { /* the media path kept the cadence this period */
        up->short_ticks = 0;
    } else if (++up->short_ticks >= 2) {
        size_t have = up->count;
        memcpy(frames, up->buf, have * sizeof(int16_t));
        memset(frames + have, 0, (up->frame - have) * sizeof(int16_t));
        up->count = 0;
        up->st.frames_silence++;
        out = 1;
    }
    up->taken = 0;
    pthread_mutex_unlock(&up->lock);
    return out;
}

size_t sa_uplink_take(sa_uplink_t *up, int16_t *frames)
{
    if (!up || !frames) return 0;
    if (pthread_mutex_trylock(&up->lock) != 0) return 0; /* the tick has it: it sends the frame */
    size_t out = 0;
    while (out < SA_UPLINK_MAX_FRAMES && up->count >= up->frame) {
        memcpy(frames + out * up->frame, up->buf, up->frame * sizeof(int16_t));
        drop_front(up, up->frame);
        up->st.frames_real++;
        out++;
    }
    up->taken += (unsigned)out;
    pthread_mutex_unlock(&up->lock);
    return out;
}

void sa_uplink_stats(sa_uplink_t *up, sa_uplink_stats_t *out)
{
    if (!up || !out) return;
    pthread_mutex_lock(&up->lock);
    *out = up->st;
    out->dropped_samples += __atomic_load_n(&up->busy_dropped, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&up->lock);
}
