"""Korean text as a recognizer hands it over, made comparable: no spacing, jamo for fuzzy matching, numerals.

Korean speech recognition (vosk's small Korean model, Whisper) varies word spacing freely ("양념치킨" /
"양념 치킨"), attaches particles (은/는/이/가/을/를/도/에) and endings (-요, -나요, -세요) to any word, writes
numbers as Hangul or digits, and mishears single jamo ("간장" -> "감장"). So the Korean answerer matches stems
as substrings of the text with every space removed (a particle after a stem never breaks the match), and
menu names fuzzily on their jamo, where one misheard consonant costs one symbol out of six, not a whole syllable.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_HANGUL0, _HANGUL_N = 0xAC00, 11172
_LEADS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_TAILS = " ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"
_NOT_WORD = re.compile(r"[^0-9a-z\uac00-\ud7a3]+")
SINO_DIGITS = {"공": 0, "영": 0, "일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "륙": 6, "칠": 7, "팔": 8,
               "구": 9}
_SINO_NUMBER = re.compile(r"[0-9]+|[일이삼사오육칠팔구십]+")


def compact(text: str) -> str:
    """Lower case, Hangul syllables, letters and digits only, no spaces: '양념 치킨은, 얼마?' -> '양념치킨은얼마'."""
    return _NOT_WORD.sub("", text.lower())


def jamo(text: str) -> str:
    """Syllables split into their letters ('간장' -> 'ㄱㅏㄴㅈㅏㅇ'); anything else is kept as it is."""
    out: list[str] = []
    for ch in text:
        n = ord(ch) - _HANGUL0
        if 0 <= n < _HANGUL_N:
            out += [_LEADS[n // 588], _VOWELS[n % 588 // 28], _TAILS[n % 28].strip()]
        else:
            out.append(ch)
    return "".join(out)


def similar(a: str, b: str) -> float:
    """0..1 likeness of two compact strings, on their jamo."""
    return difflib.SequenceMatcher(None, jamo(a), jamo(b), autojunk=False).ratio()


def fuzzy_find(text: str, needle: str, cutoff: float) -> float:
    """Best likeness of `needle` to any window of `text` as long as it (±1 syllable), 0 when under `cutoff`."""
    n, best = len(needle), 0.0
    for size in {max(1, n - 1), n, n + 1}:
        for i in range(max(1, len(text) - size + 1)):
            score = similar(text[i : i + size], needle)
            best = max(best, score)
    return best if best >= cutoff else 0.0


def has_any(text: str, stems: Iterable[str]) -> bool:
    return any(s in text for s in stems)


def sino_number(word: str) -> int | None:
    """'31' / '삼십일' -> 31, '십이' -> 12, '이' -> 2: the Sino-Korean numbers dates and clock hours use."""
    if word.isdigit():
        return int(word)
    if not word or any(c not in "일이삼사오육칠팔구십" for c in word):
        return None
    tens, _, ones = word.rpartition("십")
    if "십" not in word:
        return SINO_DIGITS[word] if len(word) == 1 else None
    t = 1 if tens == "" else SINO_DIGITS.get(tens, -1) if len(tens) == 1 else -1
    o = 0 if ones == "" else SINO_DIGITS.get(ones, -1) if len(ones) == 1 else -1
    return None if t < 1 or o < 0 else t * 10 + o


def month_day(text: str) -> tuple[int, int] | None:
    """A date said as '12월 31일' or '십이월 삼십일일' in compact text."""
    m = re.search(r"([0-9]+|[일이삼사오육칠팔구십]+)월([0-9]+|[일이삼사오육칠팔구십]+)일", text)
    if m is None:
        return None
    month, day = sino_number(m.group(1)), sino_number(m.group(2))
    if month is None or day is None or not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return month, day


def phone_digits(text: str) -> str | None:
    """The longest run of digits, spoken ('공일공 일이삼사') or written ('010-1234'): 7 to 15 of them."""
    best, run = "", ""
    for ch in [*compact(text), "."]:
        if ch.isdigit():
            run += ch
        elif ch in SINO_DIGITS:
            run += str(SINO_DIGITS[ch])
        else:
            best, run = max(best, run, key=len), ""
    return best if 7 <= len(best) <= 15 else None
