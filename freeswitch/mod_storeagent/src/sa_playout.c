/* Playout buffer (see sa_playout.h). Marks sit at absolute sample positions of the pushed stream, so playout
 * reports them exactly when the audio before them has been handed out, and a clear reports all that remain. */
#include "sa_playout.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SA_MAX_PREBUFFER_MS 60u

typedef struct sa_mark {
    struct sa_mark *next;
    uint64_t pos; /* absolute sample index after which the mark sits */
    sa_mark_event_t event;
    char name[];
} sa_mark_t;

struct sa_playout {
    pthread_mutex_t lock;
    int16_t *ring;
    size_t cap, head, count; /* ring of `count` samples starting at `head` */
    uint64_t pushed, consumed; /* absolute sample counters */
    size_t prebuffer, waited;  /* samples needed to start; samples of silence waited while gathering */
    int playing;
    int paused; /* reads hand out silence and touch nothing else */
    uint64_t pauses;
    int has_carry;
    uint8_t carry;
    sa_mark_t *marks, *marks_tail;
    uint64_t underruns, overflow_bytes, played;
    size_t n_marks;
};

sa_playout_t *sa_playout_new(const sa_playout_config_t *cfg)
{
    if (!cfg || cfg->rate == 0 || cfg->rate > 192000) return NULL;
    if (cfg->prebuffer_ms > SA_MAX_PREBUFFER_MS) return NULL;
    if (cfg->max_ms == 0 || cfg->max_ms < cfg->prebuffer_ms) return NULL;
    sa_playout_t *pb = calloc(1, sizeof(*pb));
    if (!pb) return NULL;
    pb->cap = (size_t)cfg->rate * cfg->max_ms / 1000u;
    if (pb->cap == 0) pb->cap = 1;
    pb->ring = malloc(pb->cap * sizeof(int16_t));
    if (!pb->ring || pthread_mutex_init(&pb->lock, NULL) != 0) {
        free(pb->ring);
        free(pb);
        return NULL;
    }
    pb->prebuffer = (size_t)cfg->rate * cfg->prebuffer_ms / 1000u;
    return pb;
}

static void free_marks(sa_mark_t *m)
{
    while (m) {
        sa_mark_t *next = m->next;
        free(m);
        m = next;
    }
}

void sa_playout_free(sa_playout_t *pb)
{
    if (!pb) return;
    free_marks(pb->marks);
    pthread_mutex_destroy(&pb->lock);
    free(pb->ring);
    free(pb);
}

static void ring_put(sa_playout_t *pb, int16_t s)
{
    if (pb->count == pb->cap) {
        pb->overflow_bytes += 2;
        return;
    }
    pb->ring[(pb->head + pb->count) % pb->cap] = s;
    pb->count++;
    pb->pushed++;
}

int sa_playout_push(sa_playout_t *pb, const uint8_t *bytes, size_t len)
{
    if (!pb || (!bytes && len)) return -1;
    pthread_mutex_lock(&pb->lock);
    size_t i = 0;
    if (pb->has_carry && len) {
        ring_put(pb, (int16_t)(uint16_t)(pb->carry | (uint16_t)bytes[0] << 8));
        pb->has_carry = 0;
        i = 1;
    }
    for (; i + 1 < len; i += 2) ring_put(pb, (int16_t)(uint16_t)(bytes[i] | (uint16_t)bytes[i + 1] << 8));
    if (i < len) {
        pb->carry = bytes[i];
        pb->has_carry = 1;
    }
    pthread_mutex_unlock(&pb->lock);
    return 0;
}

int sa_playout_mark(sa_playout_t *pb, const char *name)
{
    if (!pb || !name) return -1;
    size_t n = strlen(name);
    sa_mark_t *m = malloc(sizeof(*m) + n + 1);
    if (!m) return -1;
    memcpy(m->name, name, n + 1);
    m->next = NULL;
    pthread_mutex_lock(&pb->lock);
    m->pos = pb->pushed;
    if (pb->marks_tail) pb->marks_tail->next = m; else pb->marks = m;
    pb->marks_tail = m;
    pb->n_marks++;
    pthread_mutex_unlock(&pb->lock);
    return 0;
}

/* Detaches the marks at or before `pos` (all when `all`), tagged with `event`. Caller holds the lock. */
static sa_mark_t *take_marks(sa_playout_t *pb, uint64_t pos, int all, sa_mark_event_t event)
{
    sa_mark_t *first = pb->marks, *last = NULL, *m = pb->marks;
    while (m && (all || m->pos <= pos)) {
        m->event = event;
        last = m;
        m = m->next;
        pb->n_marks--;
    }
    if (!last) return NULL;
    last->next = NULL;
    pb->marks = m;
    if (!m) pb->marks_tail = NULL;
    return first;
}

static void report_marks(sa_mark_t *m, sa_mark_fn cb, void *ud)
{
    for (sa_mark_t *it = m; it; it = it->next)
        if (cb) cb(ud, it->name, it->event);
    free_marks(m);
}

size_t sa_playout_clear(sa_playout_t *pb, sa_mark_fn cb, void *ud)
{
    if (!pb) return 0;
    pthread_mutex_lock(&pb->lock);
    pb->head = pb->count = 0;
    pb->consumed = pb->pushed;
    pb->has_carry = 0;
    pb->playing = 0;
    pb->paused = 0;
    pb->waited = 0;
    size_t n = pb->n_marks;
    sa_mark_t *dropped = take_marks(pb, 0, 1, SA_MARK_CLEARED);
    pthread_mutex_unlock(&pb->lock);
    report_marks(dropped, cb, ud);
    return n;
}

int sa_playout_pause(sa_playout_t *pb)
{
    if (!pb) return -1;
    pthread_mutex_lock(&pb->lock);
    if (!pb->paused) pb->pauses++;
    pb->paused = 1;
    pthread_mutex_unlock(&pb->lock);
    return 0;
}

int sa_playout_resume(sa_playout_t *pb)
{
    if (!pb) return -1;
    pthread_mutex_lock(&pb->lock);
    pb->paused = 0;
    pthread_mutex_unlock(&pb->lock);
    return 0;
}

size_t sa_playout_read(sa_playout_t *pb, int16_t *out, size_t nsamples, sa_mark_fn cb, void *ud)
{
    if (!pb || !out || nsamples == 0) return 0;
    size_t real = 0;
    pthread_mutex_lock(&pb->lock);
    if (pb->paused) {
        /* Held, not dry: the queue, its position and the marks wait for resume or clear; nothing is reported. */
        pthread_mutex_unlock(&pb->lock);
        memset(out, 0, nsamples * sizeof(int16_t));
        return 0;
    }
    if (!pb->playing && pb->count > 0) {
        /* Start once the prebuffer is full, when the agent marked the end of a segment, or once a short segment
         * has waited a prebuffer's time: a reply shorter than the prebuffer must still play. */
        int segment_end = pb->marks != NULL;
        if (pb->count >= pb->prebuffer || segment_end || pb->waited >= pb->prebuffer) pb->playing = 1;
        else pb->waited += nsamples;
    }
    if (pb->playing) {
        real = pb->count < nsamples ? pb->count : nsamples;
        size_t first = pb->cap - pb->head < real ? pb->cap - pb->head : real;
        memcpy(out, pb->ring + pb->head, first * sizeof(int16_t));
        memcpy(out + first, pb->ring, (real - first) * sizeof(int16_t));
        pb->head = (pb->head + real) % pb->cap;
        pb->count -= real;
        pb->consumed += real;
        pb->played += real;
        if (pb->count == 0) {
            /* Ran dry. At a mark the segment simply ended; anywhere else the speech was cut: an underrun. */
            int at_mark = pb->marks_tail && pb->marks_tail->pos == pb->consumed;
            if (real < nsamples && !at_mark) pb->underruns++;
            if (real < nsamples || at_mark) {
                pb->playing = 0;
                pb->waited = 0;
            }
        }
    }
    if (real < nsamples) memset(out + real, 0, (nsamples - real) * sizeof(int16_t));
    sa_mark_t *passed = take_marks(pb, pb->consumed, 0, SA_MARK_PLAYED);
    pthread_mutex_unlock(&pb->lock);
    report_marks(passed, cb, ud);
    return real;
}

void sa_playout_stats(sa_playout_t *pb, sa_playout_stats_t *out)
{
    if (!pb || !out) return;
    pthread_mutex_lock(&pb->lock);
    out->buffered_samples = pb->count;
    out->underruns = pb->underruns;
    out->overflow_bytes = pb->overflow_bytes;
    out->played_samples = pb->played;
    out->marks_pending = pb->n_marks;
    out->playing = pb->playing;
    out->paused = pb->paused;
    out->pauses = pb->pauses;
    pthread_mutex_unlock(&pb->lock);
}
