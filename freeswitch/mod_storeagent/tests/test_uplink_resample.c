/* Uplink cadence (silence when the caller's RTP pauses) and the resampler. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sa_resample.h"
#include "sa_uplink.h"

#define FRAME 160

static void sends_a_frame_per_tick_and_silence_when_rtp_pauses(void **state)
{
    (void)state;
    sa_uplink_t *up = sa_uplink_new(8000, 200);
    assert_non_null(up);
    int16_t pcm[FRAME], frames[SA_UPLINK_MAX_FRAMES * FRAME];
    for (int i = 0; i < FRAME; i++) pcm[i] = (int16_t)(i + 1);
    assert_int_equal(sa_uplink_push(up, pcm, FRAME, 0), 0);
    assert_int_equal(sa_uplink_tick(up, frames), 1);
    assert_memory_equal(frames, pcm, sizeof(pcm));
    /* RTP pauses: one tick of grace, then a silence frame every tick */
    assert_int_equal(sa_uplink_tick(up, frames), 0);
    for (int t = 0; t < 5; t++) {
        assert_int_equal(sa_uplink_tick(up, frames), 1);
        for (int i = 0; i < FRAME; i++) assert_int_equal(frames[i], 0);
    }
    /* a late frame plus the next one: caught up in one tick */
    sa_uplink_push(up, pcm, FRAME, 0);
    sa_uplink_push(up, pcm, FRAME, 0);
    assert_int_equal(sa_uplink_tick(up, frames), 2);
    sa_uplink_stats_t st;
    sa_uplink_stats(up, &st);
    assert_int_equal(st.frames_real, 3);
    assert_int_equal(st.frames_silence, 5);
    sa_uplink_free(up);
}

static void media_path_sends_at_once_and_the_tick_adds_no_silence(void **state)
{
    (void)state;
    sa_uplink_t *up = sa_uplink_new(8000, 200);
    int16_t pcm[FRAME], frames[SA_UPLINK_MAX_FRAMES * FRAME];
    for (int i = 0; i < FRAME; i++) pcm[i] = (int16_t)(100 + i);
    /* a partial frame is not taken: it waits for the rest */
    sa_uplink_push(up, pcm, FRAME / 2, 1);
    assert_int_equal(sa_uplink_take(up, frames), 0);
    sa_uplink_push(up, pcm + FRAME / 2, FRAME / 2, 1);
    assert_int_equal(sa_uplink_take(up, frames), 1);
    assert_memory_equal(frames, pcm, sizeof(pcm));
    /* steady RTP, media path and clock interleaved with any phase: every frame once, never a silence frame */
    int sent = 1;
    for (int t = 0; t < 50; t++) {
        sa_uplink_push(up, pcm, FRAME, 1);
        sent += (int)sa_uplink_take(up, frames);
        sent += (int)sa_uplink_tick(up, frames);
    }
    assert_int_equal(sent, 51);
    /* RTP stops: the clock keeps the cadence again after its one tick of grace */
    assert_int_equal(sa_uplink_tick(up, frames), 0);
    assert_int_equal(sa_uplink_tick(up, frames), 1);
    sa_uplink_stats_t st;
    sa_uplink_stats(up, &st);
    assert_int_equal(st.frames_real, 51);
    assert_int_equal(st.frames_silence, 1);
    assert_int_equal(sa_uplink_take(NULL, frames), 0);
    sa_uplink_free(up);
}

static void odd_ptime_keeps_cadence(void **state)
{
    (void)state;
    sa_uplink_t *up = sa_uplink_new(8000, 200);
    int16_t pcm[240] = {0}, frames[SA_UPLINK_MAX_FRAMES * FRAME];
    size_t sent = 0;
    /* 30 ms packets against a 20 ms clock: 3 ticks per 2 packets, never a silence frame */
    for (int t = 0; t < 30; t++) {
        if (t % 3 != 2) sa_uplink_push(up, pcm, 240, 1);
        sent += sa_uplink_tick(up, frames);
    }
    sa_uplink_stats_t st;
    sa_uplink_stats(up, &st);
    assert_int_equal(st.frames_silence, 0);
    assert_true(sent >= 29);
    sa_uplink_free(up);
}

static void backlog_is_bounded(void **state)
{
    (void)state;
    sa_uplink_t *up = sa_uplink_new(8000, 200);
    int16_t pcm[FRAME] = {0};
    for (int i = 0; i < 20; i++) sa_uplink_push(up, pcm, FRAME, 0);
    sa_uplink_stats_t st;
    sa_uplink_stats(up, &st);
    assert_int_equal(st.dropped_samples, 20 * FRAME - 1600);
    assert_null(sa_uplink_new(8000, 10));
    assert_int_equal(sa_uplink_push(NULL, pcm, 1, 0), -1);
    sa_uplink_free(up);
}

static double tone_rms_and_crossings(const int16_t *x, size_t n, int *crossings)
{
    double acc = 0;
    *crossings = 0;
    for (size_t i = 0; i < n; i++) {
        acc += (double)x[i] * x[i];
        if (i && ((x[i - 1] < 0) != (x[i] < 0))) (*crossings)++;
    }
    return sqrt(acc / (double)n);
}

static void resamples_8k_to_16k_and_back(void **state)
{
    (void)state;
    sa_resampler_t *up = sa_resampler_new(8000, 16000), *down = sa_resampler_new(16000, 8000);
    assert_non_null(up);
    assert_non_null(down);
    static int16_t in[8000], mid[16000 + 64], back[8000 + 64];
    for (int i = 0; i < 8000; i++) in[i] = (int16_t)(10000 * sin(2 * M_PI * 440 * i / 8000.0));
    size_t n_mid = 0, n_back = 0;
    for (int f = 0; f < 50; f++) { /* 20 ms at a time, as the module does */
        long got = sa_resampler_process(up, in + f * FRAME, FRAME, mid + n_mid, 16000 + 64 - n_mid);
        assert_int_equal(got, 2 * FRAME);
        n_mid += (size_t)got;
    }
    for (int f = 0; f < 50; f++) {
        long got = sa_resampler_process(down, mid + f * 2 * FRAME, 2 * FRAME, back + n_back, 8000 + 64 - n_back);
        assert_int_equal(got, FRAME);
        n_back += (size_t)got;
    }
    int c_in, c_mid, c_back;
    double r_in = tone_rms_and_crossings(in + 800, 6400, &c_in);
    double r_mid = tone_rms_and_crossings(mid + 1600, 12800, &c_mid);
    double r_back = tone_rms_and_crossings(back + 800, 6400, &c_back);
    assert_true(fabs(r_mid - r_in) < 0.05 * r_in); /* level kept */
    assert_true(fabs(r_back - r_in) < 0.05 * r_in);
    assert_true(abs(c_mid - c_in) <= 2);           /* same frequency: same zero crossings per 0.8 s */
    assert_true(abs(c_back - c_in) <= 2);
    sa_resampler_free(up);
    sa_resampler_free(down);
}

static void equal_rates_pass_through(void **state)
{
    (void)state;
    sa_resampler_t *rs = sa_resampler_new(16000, 16000);
    int16_t in[4] = {1, -2, 3, -4}, out[4];
    assert_int_equal(sa_resampler_process(rs, in, 4, out, 4), 4);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(sa_resampler_process(rs, NULL, 4, out, 4), -1);
    assert_null(sa_resampler_new(4000, 8000));
    sa_resampler_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sends_a_frame_per_tick_and_silence_when_rtp_pauses),
        cmocka_unit_test(media_path_sends_at_once_and_the_tick_adds_no_silence),
        cmocka_unit_test(odd_ptime_keeps_cadence),
        cmocka_unit_test(backlog_is_bounded),
        cmocka_unit_test(resamples_8k_to_16k_and_back),
        cmocka_unit_test(equal_rates_pass_through),
    };
    return cmocka_run_group_tests_name("uplink_resample", tests, NULL, NULL);
}
