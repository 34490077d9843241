"""What the shop's tools say, in the shop's language: facts come back ready to speak ("토요일은 오전 9시부터 밤
9시까지 영업합니다", "18,000원"), so the model never has to translate hours or prices (and cannot get them wrong
doing so). English delegates to knowledge.py's wording; Korean is written here. `wording_for()` picks by the
shop's BCP-47 language (other languages get English, which is what the model was given before).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from storeagent.agent.store import knowledge as k
from storeagent.shop import WEEKDAYS, MenuItem, ShopProfile, TimeRange

KO_WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")


class EnglishWording:
    today, tomorrow = "Today", "Tomorrow"

    def on_day(self, day: date) -> str:
        return f"On {WEEKDAYS[day.weekday()].capitalize()}"

    def on_date(self, day: date) -> str:
        return f"On {k.say_date(day)}"

    def hours(self, profile: ShopProfile, day: date, label: str) -> str:
        return k.describe_hours(profile, day, label)

    def week(self, profile: ShopProfile) -> str:
        return k.describe_week(profile)

    def item(self, profile: ShopProfile, item: MenuItem) -> str:
        return k.describe_item(profile, item)

    def not_on_menu(self, name: str, shop: str) -> str:
        return f"{name!r} is not on the menu of {shop}."

    def open_until(self, close: time) -> str:
        return f"Yes, we're open now until {k.say_time(close)}."

    def closed_now(self, profile: ShopProfile, nxt: datetime | None, now: datetime) -> str:
        if nxt is None:
            return "We're closed right now."
        return f"We're closed right now. We open again {k.say_when(profile, nxt, now)}."

    no_faq = "No answer on file for that; offer to take a message for the owner."
    no_staff_number = "There is no staff number to transfer to. Offer to take a message instead."
    not_staff = ("That number is not one of the shop's staff numbers; I can only transfer to the shop's own staff. "
                 "Offer to transfer to staff or to take a message.")
    refused_number = "That number cannot be called from this line. Offer to take a message instead."
    unstaffed = ("Nobody is available to take the call right now, outside staffed hours. "
                 "I can take a message for the owner instead.")
    transferring = "Transferring you to a member of staff now, please hold."
    no_sink = "Sorry, I can't save messages right now."
    sink_failed = "Sorry, I couldn't save the message. Please call back later."

    def message_taken(self, name: str, number: str) -> str:
        spoken = " ".join("plus" if c == "+" else c for c in number)
        return f"I've taken your message, {name}. Your callback number is {spoken}. Is that right?"


class KoreanWording(EnglishWording):
    today, tomorrow = "오늘은", "내일은"

    def on_day(self, day: date) -> str:
        return f"{KO_WEEKDAYS[day.weekday()]}은"

    def on_date(self, day: date) -> str:
        return f"{day.month}월 {day.day}일 {KO_WEEKDAYS[day.weekday()]}은"

    def hours(self, profile: ShopProfile, day: date, label: str) -> str:
        ranges = k.hours_on(profile, day)
        hol = k.holiday_on(profile, day)
        why = f"{hol.name} 때문에 " if hol and hol.name else ("휴일이라 " if hol else "")
        if not ranges:
            return f"{label} {why}쉽니다."
        return f"{label} {why}{say_ranges_ko(ranges)} 영업합니다."

    def week(self, profile: ShopProfile) -> str:
        said = [say_ranges_ko(profile.hours.for_weekday(i)) or "휴무" for i in range(7)]
        parts = []
        for first, last in k.group_days(said):
            days = KO_WEEKDAYS[first] if last == first else f"{KO_WEEKDAYS[first]}부터 {KO_WEEKDAYS[last]}까지"
            parts.append(f"{days} {said[first]}")
        return "영업시간은 " + ", ".join(parts) + "입니다."

    def item(self, profile: ShopProfile, item: MenuItem) -> str:
        price = format_price_ko(item.price, profile.currency)
        if not item.available:
            return f"죄송합니다, {item.name}은 지금 준비가 안 됩니다. 평소 가격은 {price}입니다."
        what = f" ({item.description})" if item.description else ""
        return f"네, {item.name}{what} 있습니다. 가격은 {price}입니다."

    def not_on_menu(self, name: str, shop: str) -> str:
        return f"'{name}'은 {shop} 메뉴에 없습니다."

    def open_until(self, close: time) -> str:
        return f"네, 지금 영업 중이고 {say_time_ko(close)}까지 합니다."

    def closed_now(self, profile: ShopProfile, nxt: datetime | None, now: datetime) -> str:
        if nxt is None:
            return "지금은 영업하지 않습니다."
        return f"지금은 영업하지 않습니다. {say_when_ko(profile, nxt, now)}에 다시 엽니다."

    no_faq = "그 질문에 대한 답은 등록되어 있지 않습니다. 사장님께 메시지를 남기도록 안내하세요."
    no_staff_number = "연결할 직원 번호가 없습니다. 메시지를 남기도록 안내하세요."
    not_staff = "그 번호는 가게 직원 번호가 아니라 연결할 수 없습니다. 직원 연결이나 메시지 남기기를 안내하세요."
    refused_number = "그 번호로는 이 회선에서 연결할 수 없습니다. 메시지를 남기도록 안내하세요."
    unstaffed = "지금은 직원이 전화를 받을 수 있는 시간이 아닙니다. 사장님께 메시지를 남겨 드릴 수 있습니다."
    transferring = "지금 직원에게 연결해 드리겠습니다. 잠시만 기다려 주세요."
    no_sink = "죄송합니다, 지금은 메시지를 저장할 수 없습니다."
    sink_failed = "죄송합니다, 메시지를 저장하지 못했습니다. 나중에 다시 전화해 주세요."

    def message_taken(self, name: str, number: str) -> str:
        spoken = " ".join("플러스" if c == "+" else KO_DIGITS[int(c)] for c in number)
        return f"{name}님, 메시지 남겨 드렸습니다. 연락받으실 번호는 {spoken} 맞으신가요?"


KO_DIGITS = ("공", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")


def say_time_ko(t: time) -> str:
    """'오전 9시', '오후 2시 30분', '낮 12시' (noon), '밤 12시' (midnight), '밤 9시' (9 PM onwards)."""
    minutes = f" {t.minute}분" if t.minute else ""
    if t.hour == 0:
        return f"밤 12시{minutes}"
    if t.hour == 12:
        return f"낮 12시{minutes}"
    if t.hour < 12:
        return f"오전 {t.hour}시{minutes}"
    return f"{'밤' if t.hour >= 21 else '오후'} {t.hour - 12}시{minutes}"


def say_ranges_ko(ranges: Sequence[TimeRange]) -> str:
    """'오전 9시부터 밤 9시까지', two ranges joined with '와'; '' when closed."""
    parts = [f"{say_time_ko(r.open)}부터 {say_time_ko(r.close)}까지" for r in sorted(ranges, key=lambda r: r.open)]
    return ", ".join(parts)


def format_price_ko(price: Decimal, currency: str) -> str:
    """'18,000원' for won; other currencies keep knowledge.py's form (a Korean shop pricing in won is the case)."""
    if currency.upper() == "KRW":
        return f"{price:,.0f}원"
    return k.format_price(price, currency)


def say_when_ko(profile: ShopProfile, at: datetime, now: datetime) -> str:
    day, today = k.local_time(profile, at).date(), k.local_time(profile, now).date()
    clock = say_time_ko(k.local_time(profile, at).time())
    if day == today:
        return f"오늘 {clock}"
    if day == today + timedelta(days=1):
        return f"내일 {clock}"
    if day < today + timedelta(days=7):
        return f"{KO_WEEKDAYS[day.weekday()]} {clock}"
    return f"{day.month}월 {day.day}일 {clock}"


Wording = EnglishWording


def wording_for(language: str) -> EnglishWording:
    return KoreanWording() if language.lower().startswith("ko") else EnglishWording()
