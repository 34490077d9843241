"""Is a sound under the agent's speech an interruption? A pure state machine (no clocks, no I/O; issue 13 item 5).

The agent pauses playout on the first loud speech frame it hears while it talks (no guard: on the wire the caller
hears the agent stop within a frame or two of the onset), then this judge decides from the frames that follow
and from any words the recognizer heard meanwhile:
- REAL (clear, the caller takes the turn): the caller keeps talking — `confirm_voiced_ms` of voiced speech — or
  the recognizer heard words that say something, with voice behind them (see "Words" below);
- FALSE (resume where playout stopped): the sound ended (`release_ms` without speech) before that and was
  too little voice to be a word (`word_voiced_ms`: a cough, a click, a knock), or the words heard said nothing
  (backchannels such as "uh-huh", "okay", or a lone function word), or no words came within `words_wait_ms`
  after its end; or the sound never ended within `max_window_ms` without enough voice (steady noise).
Words. An offline recognizer invents short words for coughs and backchannels ("are", "the": measured on a real
FreeSWITCH call, issue 10), so one word alone is weak evidence. Words make an onset real when, in one
hypothesis (partials are cumulative, so they are never summed), there are
- two or more content words (neither backchannels nor function words) and `min_voiced_ms` of voice; or
- one cut-in word (CUT_IN: "wait", "stop", "sorry", "no", "잠깐"...) and `min_voiced_ms` of voice: these are the
  words callers use to take the floor, and a recognizer inventing exactly them on a cough is rare; or
- one other content word and `word_alone_voiced_ms` of voice (longer than an invented word on a cough).
Function words (articles, pronouns, auxiliaries, prepositions) never count: no caller interrupts with "the".
The caller already heard the agent stop at the onset (the pause), so a slower verdict costs no stop time; what a
verdict must not do is resume the agent over a real "wait" — which the cut-in rule and the second look at the
final transcript (`says_something`, same rule) prevent.
"Voiced" is VAD speech that is also periodic (a pitch between 70 and 400 Hz in the last 40 ms): coughs, breath,
clicks and most noise are aperiodic, so they count as sound but never as voice. Words are a refinement, never
needed: a recognizer whose partials come late leaves the decision to duration and voicing, and the final
transcript of a turn judged FALSE gets a second look (`says_something`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

import numpy as np

FRAME_MS = 20

# Generic listener responses ("I am listening", "go on") in the languages the shops speak. A judgement never
# rests on this list alone: duration and voicing come first; words only confirm a real interruption.
BACKCHANNELS: frozenset[str] = frozenset(
    """
    uh huh uhhuh uh-huh mhm mm mmm hmm hm mhmm mm-hmm hmmm ah aha oh ooh uh um umm er erm eh
    ok okay k yeah yea yes yep yup ya right alright sure gotcha cool fine good great nice wow
    i see got it thanks thank you
    네 예 응 어 음 아 오 그래 그래요 네네 예예 맞아 맞아요 알겠어요 알았어 좋아요 그렇군요 아하
    """.split()
)

# Words a caller uses to cut in: one of them alone, with some voice, is a real interruption.
CUT_IN: frozenset[str] = frozenset(
    """
    wait stop hold hang sorry excuse pardon hello hey no nope nah actually but what
    잠깐 잠깐만 잠깐만요 잠시만 잠시만요 아니 아니요 아뇨 저기 저기요 여보세요 그만 근데 뭐
    """.split()
)

# Words that carry no request on their own (and that recognizers invent for short noises).
FUNCTION_WORDS: frozenset[str] = frozenset(
    """
    a an the and or of to in on at by for from with as is are was were be been am it it's its i i'm me my
    you you're your he she him her his we us our they them their this that these those there here then
    do does did have has had will would can could shall should may might must not just so too very
    """.split()
)

_WORD = re.compile(r"[\w'-]+", re.UNICODE)


class Verdict(Enum):
    REAL = "real"
    FALSE = "false"


@dataclass(frozen=True, slots=True)
class InterruptionConfig:
    """Times in milliseconds of caller audio; levels in 16-bit sample units."""

    onset_min_rms: float = 150.0  # a frame quieter than this never pauses the agent (line noise)
    release_ms: int = 240  # no speech this long after the onset's sound: it ended
    confirm_voiced_ms: int = 600  # this much voiced speech: the caller is talking (longer than a backchannel)
    min_voiced_ms: int = 100  # words count only with at least this much voice (STT hallucinates on coughs)
    word_alone_voiced_ms: int = 300  # one content word that is not a cut-in word needs this much voice
    word_voiced_ms: int = 200  # less voice than this in an ended sound: no word at all (cough, click, knock)
    words_wait_ms: int = 300  # an ended word-like sound waits this long for the recognizer's words
    max_window_ms: int = 2000  # undecided this long (steady noise keeps the VAD on): not an interruption
    periodicity: float = 0.55  # normalised autocorrelation peak that makes a speech frame voiced


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    onset_at: float  # arrival time of the frame that paused the agent
    decided_at: float  # arrival time of the frame (or words) that decided
    speech_ms: int  # VAD speech since the onset
    voiced_ms: int  # of which voiced
    reason: str  # short, for logs: "voice", "words", "ended", "noise"


def content_words(text: str) -> list[str]:
    """The words of `text` that are not backchannels (case- and width-folded)."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    words = _WORD.findall(norm)
    # two-word responses ("got it", "thank you", "i see") are backchannels as a whole
    joined = " ".join(words)
    for phrase in ("got it", "thank you", "i see", "uh huh", "mm hmm"):
        joined = joined.replace(phrase, " ")
    return [w for w in joined.split() if w.strip("-'") and w.strip("-'") not in BACKCHANNELS]


_LETTERS = re.compile(r"^\w(?:-\w)*$")  # "m", "m-e-m-t": a recognizer spelling out a hum ("M. A. M. D.", "M&M")


def request_words(text: str) -> list[str]:
    """The content words of `text` that are neither function words nor spelled letters: what could carry a
    request."""
    return [w for w in content_words(text) if w not in FUNCTION_WORDS and not _LETTERS.match(w)]


def periodicity(pcm: np.ndarray, rate: int) -> float:
    """Peak normalised autocorrelation for pitch lags of 70..400 Hz (1.0 = perfectly periodic)."""
    x = pcm.astype(np.float64)
    x -= x.mean()
    n = len(x)
    lo, hi = max(1, rate // 400), min(rate // 70, n // 2)
    if hi <= lo:
        return 0.0
    full = np.correlate(x, x, "full")[n - 1 :]
    c = np.cumsum(x * x)
    tau = np.arange(lo, hi + 1)
    head = c[n - 1 - tau]  # energy of x[0 : n - tau]
    tail = c[n - 1] - c[tau - 1]  # energy of x[tau : n]
    r = full[tau] / np.sqrt(head * tail + 1e-9)
    return float(r.max())


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


class InterruptionJudge:
    """One judgement at a time: `onset()` says whether a frame should pause the agent and opens a judgement;
    `feed()` (every following frame) and `words()` (recognizer text) return the Judgement once decided."""

    def __init__(self, sample_rate: int, cfg: InterruptionConfig = InterruptionConfig()) -> None:
        self.cfg = cfg
        self._rate = sample_rate
        self._prev = np.zeros(sample_rate // 50, dtype=np.int16)  # last frame: periodicity looks at 40 ms
        self._open = False
        self._armed = True  # False after a noise verdict until the sound stops (one pause per sound)
        self._quiet_run = 0  # ms without speech up to the last frame observed
        self._onset_at = 0.0
        self._speech = self._voiced = self._quiet = self._elapsed = 0
        self._content = 0  # most content words in one recognizer hypothesis since the onset
        self._cut_in = False  # a cut-in word was heard since the onset
        self._heard_words = False  # the recognizer said something (backchannels included) since the onset
        self._interim = ""  # the recognizer's last interim hypothesis (its utterance so far), "" after a final
        self._baseline = ""  # that hypothesis when the judgement opened: words the caller said before the onset

    @property
    def pending(self) -> bool:
        return self._open

    def _is_voiced(self, frame: np.ndarray) -> bool:
        return periodicity(np.concatenate((self._prev, frame)), self._rate) >= self.cfg.periodicity

    def observe(self, speech: bool, pcm: bytes) -> np.ndarray:
        """Every uplink frame, judged or not, keeps the 40 ms window and the re-arm state current."""
        frame = np.frombuffer(pcm, dtype="<i2")
        if not speech:
            self._quiet_run += FRAME_MS
            if self._quiet_run >= self.cfg.release_ms:
                self._armed = True
        else:
            self._quiet_run = 0
        return frame

    def onset(self, speech: bool, pcm: bytes, at: float) -> bool:
        """Call for a frame heard while the agent talks (or is about to). True: pause now; a judgement is open."""
        frame = self.observe(speech, pcm)
        try:
            if self._open or not self._armed or not speech or rms(frame) < self.cfg.onset_min_rms:
                return False
            self._open, self._onset_at = True, at
            self._speech, self._quiet, self._elapsed = FRAME_MS, 0, FRAME_MS
            self._voiced = FRAME_MS if self._is_voiced(frame) else 0
            self._content, self._cut_in, self._heard_words = 0, False, False
            self._baseline = self._interim
            return True
        finally:
            self._prev = frame.copy() if len(frame) == len(self._prev) else self._prev

    def feed(self, speech: bool, pcm: bytes, at: float) -> Judgement | None:
        """A frame after the onset (call instead of `onset` while `pending`)."""
        frame = self.observe(speech, pcm)
        try:
            if not self._open:
                return None
            self._elapsed += FRAME_MS
            # the VAD's own hangover keeps "speech" on for ~100 ms after a sound: a quiet frame is quiet
            if speech and rms(frame) >= self.cfg.onset_min_rms:
                self._speech += FRAME_MS
                self._quiet = 0
                if self._is_voiced(frame):
                    self._voiced += FRAME_MS
            else:
                self._quiet += FRAME_MS
            c = self.cfg
            if self._voiced >= c.confirm_voiced_ms:
                return self._decide(Verdict.REAL, at, "voice")
            if self._words_say_something(self._content, self._cut_in, self._voiced):
                return self._decide(Verdict.REAL, at, "words")
            if self._quiet >= c.release_ms:  # the sound ended
                if self._voiced < c.word_voiced_ms:
                    return self._decide(Verdict.FALSE, at, "no voice")
                if self._heard_words:  # words came that say nothing (else REAL above)
                    return self._decide(Verdict.FALSE, at, "few words" if self._content else "backchannel")
                if self._quiet >= c.release_ms + c.words_wait_ms:
                    return self._decide(Verdict.FALSE, at, "no words")
            if self._elapsed >= c.max_window_ms:
                self._armed = False  # the sound goes on: do not pause again until it stops
                return self._decide(Verdict.FALSE, at, "noise")
            return None
        finally:
            self._prev = frame.copy() if len(frame) == len(self._prev) else self._prev

    def transcript(self, text: str, is_final: bool) -> None:
        """Every recognizer result, judged or not: an interim hypothesis repeats the utterance so far, so when a
        recognizer runs behind the audio (a loaded decoder) the first interim after an onset can still carry
        the words of the caller's previous sentence; `words()` counts only what follows them."""
        self._interim = "" if is_final else text

    def words(self, text: str, at: float, is_final: bool = False) -> Judgement | None:
        """Recognizer text (partial or final) that arrived while the judgement is open; then pass every result
        (this one too) to `transcript()`, which keeps the next onset's baseline current."""
        if not self._open:
            return None
        base = _WORD.findall(unicodedata.normalize("NFKC", self._baseline).casefold())
        said = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
        if base and said[: len(base)] == base:  # the same utterance as before the onset: only its new words
            text = " ".join(said[len(base):])
        if is_final:
            self._baseline = ""
        self._heard_words = self._heard_words or bool(_WORD.search(text))
        words = request_words(text)
        self._content = max(self._content, len(words))
        self._cut_in = self._cut_in or any(w in CUT_IN for w in words)
        if self._words_say_something(self._content, self._cut_in, self._voiced):
            return self._decide(Verdict.REAL, at, "words")
        return None

    def _words_say_something(self, content: int, cut_in: bool, voiced_ms: int) -> bool:
        c = self.cfg
        if voiced_ms < c.min_voiced_ms:
            return False
        return content >= 2 or cut_in or (content == 1 and voiced_ms >= c.word_alone_voiced_ms)

    def cancel(self) -> None:
        """The agent stopped speaking for another reason: nothing left to judge."""
        self._open = False

    @property
    def onset_at(self) -> float:
        return self._onset_at

    def says_something(self, text: str, judged: Judgement | None = None) -> bool:
        """Second look at the final transcript of a sound judged FALSE (or still open: `judged` None): the rule of
        the onset's words (module docstring), on the whole transcript, except that after a FALSE verdict one
        word alone is not enough unless it is a cut-in word. The sound was already too short and too unvoiced to
        be a turn, and what a recognizer makes of a hummed "mm-hmm" is one invented word ("Amanda.", "Emama."):
        measured in `make bench-quality --calls`, where each of those cleared the agent and got "I'm not sure about
        that". A caller who did mean one word says it again, and longer."""
        voiced = judged.voiced_ms if judged is not None else self._voiced
        words = request_words(text)
        cut_in = any(w in CUT_IN for w in words)
        if judged is not None and judged.verdict is Verdict.FALSE and not cut_in and len(words) < 2:
            return False
        return self._words_say_something(len(words), cut_in, voiced)

    def _decide(self, verdict: Verdict, at: float, reason: str) -> Judgement:
        self._open = False
        return Judgement(verdict, self._onset_at, at, self._speech, self._voiced, reason)
