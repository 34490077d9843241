/* sa_resample.h over speexdsp: the same resampler family FreeSWITCH itself uses, as Debian ships it. */
#include "sa_resample.h"

#include <speex/speex_resampler.h>
#include <stdlib.h>
#include <string.h>

#define SA_RESAMPLE_QUALITY 5 /* speexdsp's VoIP default: good quality at low CPU */

struct sa_resampler {
    unsigned in_rate, out_rate;
    SpeexResamplerState *st; /* NULL when the rates are equal */
};

sa_resampler_t *sa_resampler_new(unsigned in_rate, unsigned out_rate)
{
    if (in_rate < 8000 || in_rate > 48000 || out_rate < 8000 || out_rate > 48000) return NULL;
    sa_resampler_t *rs = calloc(1, sizeof(*rs));
    if (!rs) return NULL;
    rs->in_rate = in_rate;
    rs->out_rate = out_rate;
    if (in_rate != out_rate) {
        int err = 0;
        rs->st = speex_resampler_init(1, in_rate, out_rate, SA_RESAMPLE_QUALITY, &err);
        if (!rs->st || err != RESAMPLER_ERR_SUCCESS) {
            if (rs->st) speex_resampler_destroy(rs->st);
            free(rs);
            return NULL;
        }
    }
    return rs;
}

void sa_resampler_free(sa_resampler_t *rs)
{
    if (!rs) return;
    if (rs->st) speex_resampler_destroy(rs->st);
    free(rs);
}

size_t sa_resampler_max_out(const sa_resampler_t *rs, size_t in_len)
{
    if (!rs) return 0;
    return in_len * rs->out_rate / rs->in_rate + 2;
}

long sa_resampler_process(sa_resampler_t *rs, const int16_t *in, size_t in_len, int16_t *out, size_t out_cap)
{
    if (!rs || (!in && in_len) || (!out && out_cap)) return -1;
    if (!rs->st) {
        size_t n = in_len < out_cap ? in_len : out_cap;
        if (n) memcpy(out, in, n * sizeof(int16_t));
        return (long)n;
    }
    spx_uint32_t done = 0, total = 0;
    while (done < in_len && total < out_cap) {
        spx_uint32_t ilen = (spx_uint32_t)(in_len - done), olen = (spx_uint32_t)(out_cap - total);
        if (speex_resampler_process_int(rs->st, 0, in + done, &ilen, out + total, &olen) != RESAMPLER_ERR_SUCCESS)
            return -1;
        if (ilen == 0 && olen == 0) break;
        done += ilen;
        total += olen;
    }
    return (long)total;
}
