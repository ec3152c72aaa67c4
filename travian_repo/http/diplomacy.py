"""Messages and alliances over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import Alliance, Invitation, Message
from travian_repo.infra.cache import cached
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import DiplomacyRepository


class HttpDiplomacyRepository(HttpRepository, DiplomacyRepository):
    def send_message(
        self, from_player_id: int, to_player_id: int, subject: str, body: str
    ) -> Message:
        payload = {
            "to": v.check_id(to_player_id, "to_player_id"),
            "subject": v.check_text(subject, "subject", max_length=v.MAX_SUBJECT),
            "body": v.check_text(body, "body", max_length=v.MAX_BODY, allow_empty=True),
        }
        return self._one(Message, "diplomacy.send_message", body=payload,
                         player_id=v.check_id(from_player_id, "from_player_id"))

    @cached("diplomacy.messages", scope="private", depends=("mail:{player_id}",))
    def messages(self, player_id: int, *, unread_only: bool = False) -> list[Message]:
        return self._many(
            Message, "diplomacy.messages",
            params={"unread_only": v.check_bool(unread_only, "unread_only")},
            player_id=v.check_id(player_id, "player_id"),
        )

    def create_alliance(self, player_id: int, name: str, tag: str) -> Alliance:
        payload = {
            "name": v.check_text(name, "name", max_length=v.MAX_NAME),
            "tag": v.check_text(tag, "tag", max_length=v.MAX_TAG),
        }
        return self._one(Alliance, "diplomacy.create_alliance", body=payload,
                         player_id=v.check_id(player_id, "player_id"))

    def invite(self, alliance_id: int, player_id: int) -> Invitation:
        return self._one(Invitation, "diplomacy.invite",
                         body={"player_id": v.check_id(player_id, "player_id")},
                         alliance_id=v.check_id(alliance_id, "alliance_id"))
