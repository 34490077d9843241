/* WAV reader (see wav.h): walks RIFF chunks, accepts only PCM 16-bit mono. */
#include "wav.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static uint16_t le16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }

static int fail(FILE *f, char *err, size_t errlen, const char *msg)
{
    if (f) fclose(f);
    snprintf(err, errlen, "%s", msg);
    return -1;
}

int sa_wav_read(const char *path, sa_wav_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) return fail(NULL, err, errlen, "wav: cannot open file");
    uint8_t hdr[12], ch[8];
    if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, "RIFF", 4) || memcmp(hdr + 8, "WAVE", 4))
        return fail(f, err, errlen, "wav: not a RIFF/WAVE file");
    int have_fmt = 0;
    while (fread(ch, 1, 8, f) == 8) {
        uint32_t size = le32(ch + 4);
        if (!memcmp(ch, "fmt ", 4)) {
            uint8_t fmt[16];
            if (size < 16 || fread(fmt, 1, 16, f) != 16) return fail(f, err, errlen, "wav: short fmt chunk");
            if (le16(fmt) != 1 || le16(fmt + 2) != 1 || le16(fmt + 14) != 16)
                return fail(f, err, errlen, "wav: must be PCM, mono, 16-bit");
            out->rate = le32(fmt + 4);
            if (fseek(f, (long)(size - 16 + (size & 1)), SEEK_CUR)) return fail(f, err, errlen, "wav: truncated");
            have_fmt = 1;
        } else if (!memcmp(ch, "data", 4)) {
            if (!have_fmt) return fail(f, err, errlen, "wav: data before fmt");
            out->n = size / 2;
            out->samples = malloc(out->n * 2 + 2);
            uint8_t *raw = malloc(size + 1);
            if (!out->samples || !raw) { free(raw); sa_wav_free(out); return fail(f, err, errlen, "wav: out of memory"); }
            size_t got = fread(raw, 1, size, f);
            out->n = got / 2;
            for (size_t i = 0; i < out->n; i++) out->samples[i] = (int16_t)le16(raw + 2 * i);
            free(raw);
            fclose(f);
            return 0;
        } else if (fseek(f, (long)(size + (size & 1)), SEEK_CUR)) {
            break;
        }
    }
    return fail(f, err, errlen, "wav: no data chunk");
}

void sa_wav_free(sa_wav_t *w)
{
    if (!w) return;
    free(w->samples);
    w->samples = NULL;
    w->n = 0;
}
