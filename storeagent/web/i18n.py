"""The page's words in English and Korean. A missing Korean string falls back to English (tested: none is)."""

from __future__ import annotations

from typing import Protocol


class Translate(Protocol):
    def __call__(self, key: str, **kw: str) -> str: ...

LANGS = ("en", "ko")

EN: dict[str, str] = {
    "app": "StoreAgent", "skip": "Skip to content", "lang_other": "한국어", "sign_out": "Sign out",
    "nav_today": "Today", "nav_calls": "Calls", "nav_messages": "Messages", "nav_profile": "Shop profile",
    "nav_try": "Try it",
    "signin_title": "Sign in to your shop", "shop_id": "Shop", "username": "User name", "password": "Password",
    "signin": "Sign in", "signin_failed": "The shop, user name or password is not right.",
    "signin_throttled": "Too many failed attempts. Try again in 15 minutes.",
    "invite_title": "Set your password", "invite_intro": "You were invited to manage {shop}.",
    "password_again": "Password again", "password_rule": "At least 10 characters.",
    "invite_bad": "This invitation link has expired or was already used. Ask your platform team for a new one.",
    "save_password": "Save and sign in", "pw_mismatch": "The two passwords differ.",
    "pw_short": "The password needs at least 10 characters.",
    "username_bad": "3 to 64 letters, digits or . _ @ + -",
    "today_title": "Today", "calls_today": "Calls today", "open_messages": "Messages to call back",
    "calls_title": "Calls", "messages_title": "Messages", "search": "Search", "outcome": "Outcome",
    "any": "Any", "date": "Date", "filter": "Filter", "no_calls": "No calls match.",
    "no_messages": "No messages match.", "time": "Time", "caller": "Caller", "duration": "Duration",
    "latency": "Reply time", "summary": "Summary", "transcript": "Transcript", "show_number": "Show number",
    "o_answered": "Answered", "o_message": "Message taken", "o_transferred": "Transferred",
    "o_abandoned": "Hung up", "o_failed": "Failed",
    "status": "Status", "open": "To do", "done": "Done", "mark_done": "Mark done", "reopen": "Reopen",
    "callback": "Call back", "from": "From",
    "role_caller": "Caller", "role_agent": "Agent", "cut_off": "(interrupted)",
    "profile_title": "Shop profile", "hours": "Opening hours", "closed": "Closed", "opens": "Opens",
    "closes": "Closes", "second_range": "and", "holidays": "Holidays and special days",
    "holiday_name": "Name", "holiday_hint": "Leave the hours empty when closed all day.",
    "menu": "Menu", "item": "Item", "price": "Price", "description": "Description", "available": "Available",
    "sold_out": "Sold out today", "back_in": "Available again", "is_sold_out": "sold out",
    "faq": "Questions callers ask", "question": "Question", "answer": "Answer", "greeting": "Greeting",
    "greeting_hint": "What the agent says first. Empty: “Thank you for calling …”.",
    "forward": "Forward number",
    "forward_hint": "Calls go here when the agent cannot answer (E.164, e.g. +821012345678).",
    "delete": "Remove", "add_row": "new", "save": "Save changes", "saved": "Saved.",
    "fix_errors": "Nothing was saved: please fix the marked fields.",
    "conflict": "Someone else changed the shop meanwhile. The page now shows the latest version.",
    "live_live": "Live: callers hear this version.", "live_pending": "Saved — rolling out to the agent…",
    "live_failed": "Saved, but the agent is not ready ({detail}).",
    "live_local": "Saved to the local shop file; the local agent reloads it.",
    "monday": "Monday", "tuesday": "Tuesday", "wednesday": "Wednesday", "thursday": "Thursday",
    "friday": "Friday", "saturday": "Saturday", "sunday": "Sunday",
    "try_title": "Try your agent", "try_intro": "Talk to your agent from this browser, like a caller would.",
    "try_start": "Start call", "try_stop": "Hang up", "try_idle": "Not connected.",
    "try_connecting": "Connecting…", "try_live": "In call: speak now.", "try_ended": "Call ended.",
    "try_nomic": "The microphone is not available.", "try_unavailable": "Test calls are not set up here.",
    "live_transcript": "Live transcript",
    "forbidden": "This page belongs to another shop.", "not_found": "Not found.",
    "csrf": "The form expired. Please try again.",
}

KO: dict[str, str] = {
    "app": "StoreAgent", "skip": "본문으로 건너뛰기", "lang_other": "English", "sign_out": "로그아웃",
    "nav_today": "오늘", "nav_calls": "통화", "nav_messages": "메시지", "nav_profile": "매장 정보",
    "nav_try": "체험하기",
    "signin_title": "매장 로그인", "shop_id": "매장", "username": "아이디", "password": "비밀번호",
    "signin": "로그인", "signin_failed": "매장, 아이디 또는 비밀번호가 맞지 않습니다.",
    "signin_throttled": "실패가 너무 많습니다. 15분 후에 다시 시도하세요.",
    "invite_title": "비밀번호 설정", "invite_intro": "{shop} 관리자로 초대되었습니다.",
    "password_again": "비밀번호 확인", "password_rule": "10자 이상.",
    "invite_bad": "초대 링크가 만료되었거나 이미 사용되었습니다. 플랫폼 담당자에게 새 링크를 요청하세요.",
    "save_password": "저장하고 로그인", "pw_mismatch": "두 비밀번호가 다릅니다.",
    "pw_short": "비밀번호는 10자 이상이어야 합니다.",
    "username_bad": "영문, 숫자, . _ @ + - 로 3~64자",
    "today_title": "오늘", "calls_today": "오늘 통화", "open_messages": "회신할 메시지",
    "calls_title": "통화 기록", "messages_title": "메시지", "search": "검색", "outcome": "결과",
    "any": "전체", "date": "날짜", "filter": "적용", "no_calls": "해당하는 통화가 없습니다.",
    "no_messages": "해당하는 메시지가 없습니다.", "time": "시간", "caller": "발신자", "duration": "통화 시간",
    "latency": "응답 시간", "summary": "요약", "transcript": "대화 내용", "show_number": "번호 보기",
    "o_answered": "응대 완료", "o_message": "메시지 받음", "o_transferred": "연결됨",
    "o_abandoned": "끊김", "o_failed": "실패",
    "status": "상태", "open": "할 일", "done": "완료", "mark_done": "완료 표시", "reopen": "다시 열기",
    "callback": "회신 번호", "from": "보낸 사람",
    "role_caller": "손님", "role_agent": "상담원", "cut_off": "(중단됨)",
    "profile_title": "매장 정보", "hours": "영업시간", "closed": "휴무", "opens": "여는 시간",
    "closes": "닫는 시간", "second_range": "그리고", "holidays": "휴일 및 특별 영업일",
    "holiday_name": "이름", "holiday_hint": "종일 휴무면 시간을 비워 두세요.",
    "menu": "메뉴", "item": "품목", "price": "가격", "description": "설명", "available": "판매 중",
    "sold_out": "오늘 품절", "back_in": "다시 판매", "is_sold_out": "품절",
    "faq": "자주 묻는 질문", "question": "질문", "answer": "답변", "greeting": "인사말",
    "greeting_hint": "상담원이 처음 하는 말. 비워 두면 “전화 주셔서 감사합니다…”.",
    "forward": "착신 전환 번호", "forward_hint": "상담원이 받을 수 없을 때 이 번호로 연결합니다 (예: +821012345678).",
    "delete": "삭제", "add_row": "추가", "save": "변경 사항 저장", "saved": "저장했습니다.",
    "fix_errors": "저장하지 않았습니다. 표시된 항목을 고쳐 주세요.",
    "conflict": "그 사이 다른 곳에서 매장 정보가 바뀌었습니다. 최신 내용을 다시 보여 드립니다.",
    "live_live": "적용됨: 손님이 이 내용을 듣습니다.", "live_pending": "저장됨 — 상담원에 적용하는 중…",
    "live_failed": "저장했지만 상담원이 준비되지 않았습니다 ({detail}).",
    "live_local": "로컬 매장 파일에 저장했습니다. 로컬 상담원이 다시 읽습니다.",
    "monday": "월요일", "tuesday": "화요일", "wednesday": "수요일", "thursday": "목요일",
    "friday": "금요일", "saturday": "토요일", "sunday": "일요일",
    "try_title": "상담원 체험하기", "try_intro": "손님처럼 이 브라우저에서 상담원과 통화해 보세요.",
    "try_start": "통화 시작", "try_stop": "끊기", "try_idle": "연결되지 않음.",
    "try_connecting": "연결 중…", "try_live": "통화 중: 말씀하세요.", "try_ended": "통화가 끝났습니다.",
    "try_nomic": "마이크를 사용할 수 없습니다.", "try_unavailable": "이 환경에서는 체험 통화가 설정되지 않았습니다.",
    "live_transcript": "실시간 대화",
    "forbidden": "다른 매장의 페이지입니다.", "not_found": "찾을 수 없습니다.",
    "csrf": "양식이 만료되었습니다. 다시 시도해 주세요.",
}

TABLES = {"en": EN, "ko": KO}


def pick_lang(cookie: str | None, accept_language: str) -> str:
    if cookie in LANGS:
        return cookie
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("ko"):
            return "ko"
        if tag.startswith("en"):
            return "en"
    return "en"


def translator(lang: str) -> Translate:
    table = TABLES.get(lang, EN)

    def t(key: str, **kw: str) -> str:
        text = table.get(key) or EN.get(key, key)
        return text.format(**kw) if kw else text

    return t


