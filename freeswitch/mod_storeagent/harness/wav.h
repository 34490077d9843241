/* Minimal reader for 16-bit PCM mono WAV files (the harness's caller audio). */
#ifndef SA_WAV_H
#define SA_WAV_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned rate;
    int16_t *samples; /* malloc'd */
    size_t n;
} sa_wav_t;

/* 0, or -1 with `err` saying what is wrong with the file. */
int sa_wav_read(const char *path, sa_wav_t *out, char *err, size_t errlen);
void sa_wav_free(sa_wav_t *w);

#endif
