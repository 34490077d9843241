"""What the agent says on its own (greeting, reprompt, goodbye) and the system prompt, per language."""

from __future__ import annotations

import json
from dataclasses import dataclass

from storeagent.shop import ShopConfig


@dataclass(frozen=True, slots=True)
class Phrases:
    greeting: str
    reprompt: str
    goodbye_silence: str
    time_limit: str
    trouble: str
    filler: str
    no_staff: str
    handoff: str = ""  # said before the call goes to the shop's fallback because the agent cannot go on


def phrases_for(language: str, shop_name: str) -> Phrases:
    if language.lower().startswith("ko"):
        return Phrases(
            greeting=f"안녕하세요, {shop_name}입니다. 무엇을 도와드릴까요?",
            reprompt="여보세요, 듣고 계신가요?",
            goodbye_silence="응답이 없으셔서 전화를 끊겠습니다. 감사합니다.",
            time_limit="통화 시간이 다 되어 이만 끊겠습니다. 감사합니다.",
            trouble=(
                "죄송합니다, 지금 답변에 문제가 있습니다. "
                "메시지를 남겨 주시면 사장님께 전해 드리겠습니다."
            ),
            filler="잠시만요.",
            no_staff="지금은 직원이 전화를 받을 수 없습니다. 성함과 연락처, 메시지를 남겨 주시면 전해 드리겠습니다.",
            handoff="죄송합니다, 지금 말씀을 잘 들을 수 없어서 다른 연결로 넘겨 드리겠습니다. 잠시만 기다려 주세요.",
        )
    return Phrases(
        greeting=f"Thank you for calling {shop_name}. How can I help you?",
        reprompt="Are you still there?",
        goodbye_silence="I haven't heard anything, so I'll hang up now. Thanks for calling, goodbye.",
        time_limit="I'm sorry, we've reached the time limit for this call. Thanks for calling, goodbye.",
        trouble="Sorry, I'm having trouble answering right now. I can take a message for the owner.",
        filler="One moment.",
        no_staff="Nobody can come to the phone right now. I can take a message: please tell me your name, "
        "your phone number and your message.",
        handoff="I'm sorry, I can't hear you properly right now. Let me put you through, please hold.",
    )


def system_prompt(cfg: ShopConfig) -> str:
    """Instructions plus the shop's facts as JSON, so any model answers only from them."""
    facts = cfg.profile.model_dump(mode="json", by_alias=True, exclude={"greeting"})
    lang = "Korean" if cfg.language.lower().startswith("ko") else "English"
    return (
        f"You answer the phone for {cfg.profile.name}, a small shop. Speak {lang}. This is a phone call: "
        "reply in one to three short sentences of plain spoken words, no lists, no markdown, no emojis. "
        "Answer only from the shop facts below and the tools; if you do not know, say so and offer to take "
        "a message for the owner. Use tools for opening hours, whether the shop is open now, menu items and "
        "prices, and FAQs. Use transfer_to_staff when the caller asks for a person, take_message to leave a "
        "message (read the callback number back digit by digit and ask for confirmation first), end_call "
        "when the caller is done.\n"
        f"Shop facts (JSON): {json.dumps(facts, ensure_ascii=False)}"
    )
