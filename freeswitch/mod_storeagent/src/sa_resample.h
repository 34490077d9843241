/* Streaming L16 mono resampler (speexdsp underneath), kept behind this API so the module and tests never see it. */
#ifndef SA_RESAMPLE_H
#define SA_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sa_resampler sa_resampler_t;

/* Rates 8000..48000. Returns NULL on bad rates or when out of memory. Equal rates give a pass-through. */
sa_resampler_t *sa_resampler_new(unsigned in_rate, unsigned out_rate);
void sa_resampler_free(sa_resampler_t *rs);

/* Most output samples `in_len` input samples can produce (size your output buffer with this). */
size_t sa_resampler_max_out(const sa_resampler_t *rs, size_t in_len);

/* Consumes all `in_len` samples and writes the output produced; filter history carries over between calls.
 * Returns samples written (<= out_cap), or -1 on bad arguments. */
long sa_resampler_process(sa_resampler_t *rs, const int16_t *in, size_t in_len, int16_t *out, size_t out_cap);

#endif
