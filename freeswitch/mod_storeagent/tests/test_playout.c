/* Playout buffer behaviour: prebuffer, pacing, odd bytes, marks, clear within one frame, underruns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sa_playout.h"

#define RATE 8000u
#define FRAME 160u

typedef struct {
    char names[16][32];
    sa_mark_event_t events[16];
    int n;
} marks_t;

static void record(void *ud, const char *name, sa_mark_event_t ev)
{
    marks_t *m = ud;
    if (m->n < 16) {
        strncpy(m->names[m->n], name, sizeof(m->names[0]) - 1);
        m->events[m->n++] = ev;
    }
}

/* `n` samples counting up from `start`, as little-endian bytes. */
static void ramp(uint8_t *out, int start, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(start + (int)i);
        out[2 * i] = (uint8_t)(v & 0xff);
        out[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

static sa_playout_t *make(unsigned prebuffer_ms)
{
    sa_playout_config_t cfg = {RATE, prebuffer_ms, 2000};
    sa_playout_t *pb = sa_playout_new(&cfg);
    assert_non_null(pb);
    return pb;
}

static void rejects_bad_config(void **state)
{
    (void)state;
    sa_playout_config_t zero_rate = {0, 40, 1000}, big_pre = {RATE, 61, 1000}, small_max = {RATE, 40, 20};
    assert_null(sa_playout_new(&zero_rate));
    assert_null(sa_playout_new(&big_pre));
    assert_null(sa_playout_new(&small_max));
    assert_null(sa_playout_new(NULL));
    assert_int_equal(sa_playout_push(NULL, (const uint8_t *)"ab", 2), -1);
    assert_int_equal(sa_playout_mark(NULL, "x"), -1);
}

static void waits_for_prebuffer_then_plays_in_order(void **state)
{
    (void)state;
    sa_playout_t *pb = make(40);
    uint8_t bytes[FRAME * 2 * 4];
    int16_t out[FRAME];
    ramp(bytes, 1, FRAME); /* 20 ms: less than the 40 ms prebuffer */
    sa_playout_push(pb, bytes, FRAME * 2);
    assert_int_equal(sa_playout_read(pb, out, FRAME, NULL, NULL), 0);
    assert_int_equal(out[0], 0);
    ramp(bytes, 1 + FRAME, FRAME * 3);
    sa_playout_push(pb, bytes, FRAME * 2 * 3);
    int expect = 1;
    for (int f = 0; f < 4; f++) {
        assert_int_equal(sa_playout_read(pb, out, FRAME, NULL, NULL), FRAME);
        for (unsigned i = 0; i < FRAME; i++) assert_int_equal(out[i], expect++);
    }
    sa_playout_free(pb);
}

static void odd_bytes_join_the_next_chunk(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    uint8_t bytes[FRAME * 2];
    ramp(bytes, 1000, FRAME);
    /* 3 + 1 + 250 + rest: every split leaves an odd byte at some point */
    size_t cuts[] = {3, 1, 250, FRAME * 2 - 254};
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        sa_playout_push(pb, bytes + off, cuts[i]);
        off += cuts[i];
    }
    int16_t out[FRAME];
    assert_int_equal(sa_playout_read(pb, out, FRAME, NULL, NULL), FRAME);
    for (unsigned i = 0; i < FRAME; i++) assert_int_equal(out[i], 1000 + (int)i);
    sa_playout_free(pb);
}

static void short_reply_plays_after_waiting_a_prebuffer(void **state)
{
    (void)state;
    sa_playout_t *pb = make(60);
    uint8_t bytes[80 * 2];
    ramp(bytes, 1, 80);
    sa_playout_push(pb, bytes, sizeof(bytes)); /* 10 ms only, no mark */
    int16_t out[FRAME];
    size_t real = 0;
    int frames = 0;
    while (real == 0 && frames < 10) {
        real = sa_playout_read(pb, out, FRAME, NULL, NULL);
        frames++;
    }
    assert_int_equal(real, 80);
    assert_true(frames <= 4); /* waited at most the 60 ms prebuffer */
    sa_playout_free(pb);
}

static void marks_report_played_when_passed_in_order(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    marks_t m = {0};
    uint8_t bytes[FRAME * 2 * 2];
    ramp(bytes, 1, FRAME * 2);
    sa_playout_push(pb, bytes, FRAME * 2 + 100); /* mark "a" sits 50 samples into the 2nd frame */
    sa_playout_mark(pb, "a");
    sa_playout_push(pb, bytes + FRAME * 2 + 100, FRAME * 2 - 100);
    sa_playout_mark(pb, "b");
    int16_t out[FRAME];
    sa_playout_read(pb, out, FRAME, record, &m);
    assert_int_equal(m.n, 0);
    sa_playout_read(pb, out, FRAME, record, &m);
    assert_int_equal(m.n, 2); /* "a" mid-frame and "b" at its end: both passed by this frame */
    assert_string_equal(m.names[0], "a");
    assert_string_equal(m.names[1], "b");
    assert_int_equal(m.events[0], SA_MARK_PLAYED);
    assert_int_equal(m.events[1], SA_MARK_PLAYED);
    sa_playout_stats_t st;
    sa_playout_stats(pb, &st);
    assert_int_equal(st.underruns, 0);
    sa_playout_free(pb);
}

static void mark_without_audio_is_played_on_next_frame(void **state)
{
    (void)state;
    sa_playout_t *pb = make(40);
    marks_t m = {0};
    sa_playout_mark(pb, "empty");
    int16_t out[FRAME];
    sa_playout_read(pb, out, FRAME, record, &m);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.names[0], "empty");
    sa_playout_free(pb);
}

static void clear_is_honoured_within_one_frame(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    marks_t m = {0};
    uint8_t bytes[FRAME * 2 * 10];
    ramp(bytes, 1, FRAME * 10);
    sa_playout_push(pb, bytes, sizeof(bytes));
    sa_playout_mark(pb, "m1");
    sa_playout_push(pb, bytes, 3); /* an odd byte pending: dropped too */
    sa_playout_mark(pb, "m2");
    int16_t out[FRAME];
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
    assert_int_equal(sa_playout_clear(pb, record, &m), 2);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.names[0], "m1");
    assert_int_equal(m.events[0], SA_MARK_CLEARED);
    assert_string_equal(m.names[1], "m2");
    assert_int_equal(m.events[1], SA_MARK_CLEARED);
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), 0);
    for (unsigned i = 0; i < FRAME; i++) assert_int_equal(out[i], 0);
    /* new speech after the clear starts clean (no stale odd byte) */
    ramp(bytes, 7, FRAME);
    sa_playout_push(pb, bytes, FRAME * 2);
    sa_playout_mark(pb, "m3");
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
    assert_int_equal(out[0], 7);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.events[2], SA_MARK_PLAYED);
    sa_playout_free(pb);
}

static void dry_mid_speech_is_an_underrun_dry_at_mark_is_not(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    uint8_t bytes[FRAME * 2 * 2];
    int16_t out[FRAME];
    sa_playout_stats_t st;
    ramp(bytes, 1, FRAME + 40);
    sa_playout_push(pb, bytes, (FRAME + 40) * 2);
    sa_playout_mark(pb, "end");
    sa_playout_read(pb, out, FRAME, NULL, NULL);
    assert_int_equal(sa_playout_read(pb, out, FRAME, NULL, NULL), 40); /* segment end: padded with silence */
    sa_playout_stats(pb, &st);
    assert_int_equal(st.underruns, 0);
    ramp(bytes, 1, FRAME + 40);
    sa_playout_push(pb, bytes, (FRAME + 40) * 2); /* no mark: the agent fell behind */
    sa_playout_read(pb, out, FRAME, NULL, NULL);
    sa_playout_read(pb, out, FRAME, NULL, NULL);
    sa_playout_read(pb, out, FRAME, NULL, NULL); /* still dry: one dry spell, one underrun */
    sa_playout_stats(pb, &st);
    assert_int_equal(st.underruns, 1);
    assert_int_equal(st.playing, 0);
    sa_playout_free(pb);
}

static void overflow_is_dropped_and_counted(void **state)
{
    (void)state;
    sa_playout_config_t cfg = {RATE, 0, 1000};
    sa_playout_t *pb = sa_playout_new(&cfg);
    static uint8_t big[RATE * 2 * 2];
    sa_playout_push(pb, big, sizeof(big));
    sa_playout_stats_t st;
    sa_playout_stats(pb, &st);
    assert_int_equal(st.buffered_samples, RATE);
    assert_int_equal(st.overflow_bytes, RATE * 2);
    sa_playout_free(pb);
}

static void pause_holds_the_exact_position_and_marks_resume_continues(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    marks_t m = {0};
    uint8_t bytes[FRAME * 2 * 6];
    int16_t out[FRAME];
    ramp(bytes, 1, FRAME * 6);
    sa_playout_push(pb, bytes, FRAME * 2 * 3 + 20); /* "m1" 10 samples into the 4th frame */
    sa_playout_mark(pb, "m1");
    sa_playout_push(pb, bytes + FRAME * 2 * 3 + 20, FRAME * 2 * 3 - 20);
    sa_playout_mark(pb, "m2");
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
    assert_int_equal(out[FRAME - 1], FRAME);
    assert_int_equal(sa_playout_pause(pb), 0);
    assert_int_equal(sa_playout_pause(pb), 0); /* idempotent */
    for (int f = 0; f < 25; f++) { /* half a second held: silence, nothing consumed, no mark, no underrun */
        out[0] = 99;
        assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), 0);
        for (unsigned i = 0; i < FRAME; i++) assert_int_equal(out[i], 0);
    }
    sa_playout_stats_t st;
    sa_playout_stats(pb, &st);
    assert_int_equal(m.n, 0);
    assert_int_equal(st.underruns, 0);
    assert_int_equal(st.paused, 1);
    assert_int_equal(st.pauses, 1);
    assert_int_equal(st.buffered_samples, FRAME * 5);
    assert_int_equal(st.marks_pending, 2);
    uint8_t more[FRAME * 2];
    ramp(more, 1 + FRAME * 6, FRAME);
    sa_playout_push(pb, more, sizeof(more)); /* speech keeps arriving during the pause: queued behind */
    sa_playout_mark(pb, "m3");
    assert_int_equal(sa_playout_resume(pb), 0);
    int expect = FRAME + 1; /* the very next sample after the pause */
    for (int f = 0; f < 6; f++) {
        assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
        for (unsigned i = 0; i < FRAME; i++) assert_int_equal(out[i], expect++);
        if (f == 1) assert_int_equal(m.n, 0); /* samples 1..480 played: "m1" at 490 not yet */
        if (f == 2) {
            assert_int_equal(m.n, 1);
            assert_string_equal(m.names[0], "m1");
        }
    }
    assert_int_equal(m.n, 3);
    assert_string_equal(m.names[1], "m2");
    assert_string_equal(m.names[2], "m3");
    for (int i = 0; i < 3; i++) assert_int_equal(m.events[i], SA_MARK_PLAYED);
    sa_playout_stats(pb, &st);
    assert_int_equal(st.underruns, 0);
    assert_int_equal(st.paused, 0);
    sa_playout_free(pb);
}

static void clear_during_a_pause_reports_marks_cleared_and_ends_the_pause(void **state)
{
    (void)state;
    sa_playout_t *pb = make(0);
    marks_t m = {0};
    uint8_t bytes[FRAME * 2 * 4];
    int16_t out[FRAME];
    ramp(bytes, 1, FRAME * 4);
    sa_playout_push(pb, bytes, FRAME * 2 * 2);
    sa_playout_mark(pb, "a");
    sa_playout_push(pb, bytes, FRAME * 2 * 2);
    sa_playout_mark(pb, "b");
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
    sa_playout_pause(pb);
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), 0);
    assert_int_equal(sa_playout_clear(pb, record, &m), 2);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.events[0], SA_MARK_CLEARED);
    assert_int_equal(m.events[1], SA_MARK_CLEARED);
    sa_playout_stats_t st;
    sa_playout_stats(pb, &st);
    assert_int_equal(st.paused, 0);
    ramp(bytes, 500, FRAME);
    sa_playout_push(pb, bytes, FRAME * 2); /* the next reply plays without a resume */
    sa_playout_mark(pb, "c");
    assert_int_equal(sa_playout_read(pb, out, FRAME, record, &m), FRAME);
    assert_int_equal(out[0], 500);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.events[2], SA_MARK_PLAYED);
    sa_playout_free(pb);
}

static void pause_before_speech_holds_it_and_the_prebuffer_wait(void **state)
{
    (void)state;
    sa_playout_t *pb = make(60);
    int16_t out[FRAME];
    assert_int_equal(sa_playout_resume(pb), 0); /* a resume without a pause changes nothing */
    sa_playout_pause(pb);
    uint8_t bytes[80 * 2];
    ramp(bytes, 1, 80);
    sa_playout_push(pb, bytes, sizeof(bytes)); /* 10 ms, no mark: would play after a prebuffer's wait */
    for (int f = 0; f < 10; f++) assert_int_equal(sa_playout_read(pb, out, FRAME, NULL, NULL), 0);
    sa_playout_resume(pb);
    int frames = 0;
    size_t real = 0;
    while (real == 0 && frames < 10) {
        real = sa_playout_read(pb, out, FRAME, NULL, NULL);
        frames++;
    }
    assert_int_equal(real, 80);
    assert_int_equal(frames, 4); /* the full 60 ms wait counted from the resume, not from the push */
    assert_int_equal(out[0], 1);
    assert_int_equal(sa_playout_pause(NULL), -1);
    assert_int_equal(sa_playout_resume(NULL), -1);
    sa_playout_free(pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_config),
        cmocka_unit_test(waits_for_prebuffer_then_plays_in_order),
        cmocka_unit_test(odd_bytes_join_the_next_chunk),
        cmocka_unit_test(short_reply_plays_after_waiting_a_prebuffer),
        cmocka_unit_test(marks_report_played_when_passed_in_order),
        cmocka_unit_test(mark_without_audio_is_played_on_next_frame),
        cmocka_unit_test(clear_is_honoured_within_one_frame),
        cmocka_unit_test(dry_mid_speech_is_an_underrun_dry_at_mark_is_not),
        cmocka_unit_test(overflow_is_dropped_and_counted),
        cmocka_unit_test(pause_holds_the_exact_position_and_marks_resume_continues),
        cmocka_unit_test(clear_during_a_pause_reports_marks_cleared_and_ends_the_pause),
        cmocka_unit_test(pause_before_speech_holds_it_and_the_prebuffer_wait),
    };
    return cmocka_run_group_tests_name("playout", tests, NULL, NULL);
}
