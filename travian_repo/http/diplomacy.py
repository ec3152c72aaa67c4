"""Messages and alliances over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import Alliance, Invitation, Message
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import DiplomacyRepository


class HttpDiplomacyRepository(HttpRepository, DiplomacyRepository):
    def send_message(
        self, from_player_id: int, to_player_id: int, subject: str, body: str
    ) -> Message:
        sender, recipient, subject, body = v.check_message(
            from_player_id, to_player_id, subject, body
        )
        payload = {"to": recipient, "subject": subject, "body": body}
        return self._one(Message, "diplomacy.send_message", body=payload, player_id=sender)

    def messages(self, player_id: int, *, unread_only: bool = False) -> list[Message]:
        player_id = v.check_id(player_id, "player_id")
        return self._many(
            Message, "diplomacy.messages",
            params={"unread_only": v.check_bool(unread_only, "unread_only")},
            player_id=player_id,
        )

    def create_alliance(self, player_id: int, name: str, tag: str) -> Alliance:
        player_id = v.check_id(player_id, "player_id")
        name, tag = v.check_alliance(name, tag)
        return self._one(Alliance, "diplomacy.create_alliance", body={"name": name, "tag": tag},
                         player_id=player_id)

    def invite(self, alliance_id: int, player_id: int) -> Invitation:
        alliance_id = v.check_id(alliance_id, "alliance_id")
        return self._one(Invitation, "diplomacy.invite",
                         body={"player_id": v.check_id(player_id, "player_id")},
                         alliance_id=alliance_id)
