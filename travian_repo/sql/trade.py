"""Trade on the database: market offers and resource shipments, merchants counted.

Choices the backends share (the HTTP side answers the same):

- Merchants: a village has as many as its marketplace level (rules ``merchants_of``). Busy
  ones are those held by the village's open offers and those of its shipments still out
  (state ``underway`` or ``returning`` and not yet home at ``returns_at``: a shipment the
  engine has not yet closed frees its merchants when they are due home).
  :func:`busy_merchants` is the one count of them.
- The trade office raises what one merchant carries (rules ``merchant_capacity``).
- Travel: the distance on the wrapping map, at the tribe's merchant speed. The server speed
  speeds merchants up by the same factor as troops (rules ``troop_speed_factor``: x3 walks
  x2); the tournament square does not (merchants are not troops). The merchants come back
  after the same time again (``returns_at``).
- ``create_offer`` refuses a ratio beyond 2:1 either way (Travian's market does), before
  any I/O, like the other argument checks.
- ``send_resources`` checks the source village first (NotFound / Forbidden: the route is
  the source's), then that the target exists.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from sqlalchemy import Connection, and_, func, insert, select, update

from travian_repo.domain import events
from travian_repo.domain.errors import Conflict, Forbidden, NotFound, RuleViolation
from travian_repo.domain.values import Resources, Shipment, TradeOffer
from travian_repo.repositories.base import TradeRepository
from travian_repo.rules import economy, travel
from travian_repo.sql import schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.database import WorldSettings
from travian_repo.sql.schema import as_utc
from travian_repo.sql.village_state import VillageState
from travian_repo.sql.village_writes import (
    add_stock,
    check_owner,
    lock_village,
    lock_villages,
    spend,
)

_o = schema.trade_offers
_s = schema.shipments
_v = schema.villages

MARKET_LIMIT = 200
BUSY_SHIPMENT_STATES = ("underway", "returning")


class SqlTradeRepository(SqlRepository, TradeRepository):
    def create_offer(
        self,
        village_id: int,
        offer_resource: str,
        offer_amount: int,
        request_resource: str,
        request_amount: int,
    ) -> TradeOffer:
        """Put an offer on the market: the offered goods leave the stock, merchants are held.

        InvalidRequest for bad arguments or the same resource on both sides; RuleViolation
        for a ratio beyond 2:1, no marketplace or too few free merchants;
        InsufficientResources when the stock does not cover the offer.
        """
        action = "create a trade offer"
        actor = self._actor_id(action)
        goods = Resources(**{offer_resource: offer_amount})

        def run(conn: Connection) -> TradeOffer:
            state = lock_village(conn, village_id, actor, self.now, action=action)
            merchants = _reserve_merchants(conn, state, offer_amount)
            spend(conn, state, goods)
            offer_id = conn.execute(
                insert(_o)
                .values(
                    village_id=village_id,
                    player_id=state.player_id,
                    offer_resource=offer_resource,
                    offer_amount=offer_amount,
                    request_resource=request_resource,
                    request_amount=request_amount,
                    merchants=merchants,
                    state="open",
                    created_at=state.now,
                )
                .returning(_o.c.id)
            ).scalar_one()
            self._emit(events.OFFER_CREATED, state.player_id, village_id=village_id,
                       offer_id=int(offer_id))
            return TradeOffer(
                id=int(offer_id),
                village_id=village_id,
                player_id=state.player_id,
                offer_resource=offer_resource,
                offer_amount=offer_amount,
                request_resource=request_resource,
                request_amount=request_amount,
                merchants=merchants,
                created_at=state.now,
            )

        return self._write(run)

    def send_resources(
        self, from_village_id: int, to_village_id: int, resources: Resources | Mapping[str, int]
    ) -> Shipment:
        """Send resources with merchants; they arrive after the travel time and come back.

        InvalidRequest for bad arguments or a village sending to itself; NotFound / Forbidden
        for the source, NotFound for the target; RuleViolation without a marketplace or with
        too few free merchants; InsufficientResources when the stock does not cover it.
        """
        # Checked by the declaration: a Resources value.
        goods = resources if isinstance(resources, Resources) else Resources(**resources)
        action = "send resources"
        actor = self._actor_id(action)
        settings = self.settings

        def run(conn: Connection) -> Shipment:
            state = lock_village(conn, from_village_id, actor, self.now, action=action)
            target = conn.execute(
                select(_v.c.x, _v.c.y, _v.c.player_id).where(_v.c.id == to_village_id)
            ).first()
            if target is None:
                raise NotFound(f"village {to_village_id} does not exist")
            merchants = _reserve_merchants(conn, state, goods.total)
            spend(conn, state, goods)
            fields = travel.distance(
                state.x, state.y, target.x, target.y, radius=settings.map_radius
            )
            seconds = travel.travel_seconds(
                fields,
                economy.merchant_speed(state.tribe),
                server_speed=settings.speed,
                tournament_square_level=0,
            )
            departed = state.now
            arrives = departed + timedelta(seconds=seconds)
            returns = arrives + timedelta(seconds=seconds)
            shipment_id = conn.execute(
                insert(_s)
                .values(
                    from_village_id=from_village_id,
                    to_village_id=to_village_id,
                    wood=goods.wood,
                    clay=goods.clay,
                    iron=goods.iron,
                    wheat=goods.wheat,
                    merchants=merchants,
                    state="underway",
                    departed_at=departed,
                    arrives_at=arrives,
                    returns_at=returns,
                )
                .returning(_s.c.id)
            ).scalar_one()
            sent = dict(shipment_id=int(shipment_id), from_village_id=from_village_id,
                        to_village_id=to_village_id, arrives_at=arrives.isoformat())
            self._emit(events.RESOURCES_SENT, state.player_id, **sent)
            if int(target.player_id) != state.player_id:
                self._emit(events.RESOURCES_INCOMING, int(target.player_id), **sent)
            return Shipment(
                id=int(shipment_id),
                from_village_id=from_village_id,
                to_village_id=to_village_id,
                resources=goods,
                merchants=merchants,
                departed_at=departed,
                arrives_at=arrives,
            )

        return self._write(run)

    def offers(self, village_id: int) -> list[TradeOffer]:
        """Open offers of other villages, newest first (at most 200), in one round trip.

        The market is public: anyone (even acting as nobody) may look; the village must exist.
        """
        query = (
            select(
                _v.c.id.label("viewer"),
                _o.c.id,
                _o.c.village_id,
                _o.c.player_id,
                _o.c.offer_resource,
                _o.c.offer_amount,
                _o.c.request_resource,
                _o.c.request_amount,
                _o.c.merchants,
                _o.c.created_at,
            )
            .select_from(
                _v.outerjoin(_o, and_(_o.c.state == "open", _o.c.village_id != _v.c.id))
            )
            .where(_v.c.id == village_id)
            .order_by(_o.c.created_at.desc(), _o.c.id.desc())
            .limit(MARKET_LIMIT)
        )
        rows = self._read(lambda conn: conn.execute(query).all())
        if not rows:
            raise NotFound(f"village {village_id} does not exist")
        return [
            TradeOffer(
                id=int(r.id),
                village_id=int(r.village_id),
                player_id=int(r.player_id),
                offer_resource=r.offer_resource,
                offer_amount=r.offer_amount,
                request_resource=r.request_resource,
                request_amount=r.request_amount,
                merchants=r.merchants,
                created_at=r.created_at,
            )
            for r in rows
            if r.id is not None
        ]

    def accept_offer(self, village_id: int, offer_id: int) -> Shipment:
        """Accept another player's open offer from ``village_id``; the accepter's shipment.

        The accepter pays ``request_amount`` of ``request_resource`` from its stock and sends
        it to the offerer with its own merchants; the offerer's held goods (taken from its
        stock when the offer was made) go to the accepter with the offerer's held merchants.
        Two shipments (one each way, each at its sender's merchant speed, merchants back
        after the same time again); the offer becomes ``accepted``. Both villages are locked
        lowest id first, and the offer is re-read under the locks: of two players accepting
        one offer at once, exactly one wins and the other gets Conflict.

        Errors, in this order, nothing written: InvalidRequest (bad ids); NotFound /
        Forbidden for ``village_id``; NotFound (no such offer); RuleViolation (an offer of
        the acting player's own); Conflict (the offer is accepted or cancelled);
        RuleViolation (no marketplace, too few free merchants); InsufficientResources.
        """
        action = "accept a trade offer"
        settings = self.settings

        def run(conn: Connection) -> Shipment:
            actor = self._require_village_owner(conn, village_id, action)
            # An offer's village never changes, so it may be read before the locks (it says
            # which to take); everything decided on is read after them.
            offerer_id = _offer_village(conn, offer_id)
            states = lock_villages(conn, (village_id, offerer_id), self.now)
            accepter, offerer = states[village_id], states[offerer_id]
            check_owner(accepter.player_id, actor, village_id, action)  # changed hands meanwhile?
            offer = _lock_offer(conn, offer_id)
            if offerer.player_id == actor or int(offer.player_id) == actor:
                raise RuleViolation(
                    f"offer {offer_id} is your own (village {offer.village_id}); "
                    "cancel it instead of accepting it",
                    details={"offer_id": offer_id, "village_id": int(offer.village_id)},
                )
            _check_open(offer)
            paid = Resources(**{offer.request_resource: int(offer.request_amount)})
            received = Resources(**{offer.offer_resource: int(offer.offer_amount)})
            merchants = _reserve_merchants(conn, accepter, paid.total)
            spend(conn, accepter, paid)
            _close_offer(conn, offer_id, "accepted")
            outgoing = _dispatch(conn, settings, accepter, offerer, paid, merchants)
            back = _dispatch(conn, settings, offerer, accepter, received, int(offer.merchants))
            for shipment, sender, receiver in ((outgoing, accepter, offerer),
                                               (back, offerer, accepter)):
                sent = dict(shipment_id=shipment.id, from_village_id=shipment.from_village_id,
                            to_village_id=shipment.to_village_id,
                            arrives_at=shipment.arrives_at.isoformat())
                self._emit(events.RESOURCES_SENT, sender.player_id, **sent)
                self._emit(events.RESOURCES_INCOMING, receiver.player_id, **sent)
            accepted = dict(offer_id=offer_id, village_id=offerer.id,
                            accepted_by_village_id=village_id, shipment_id=outgoing.id,
                            return_shipment_id=back.id)
            self._emit(events.OFFER_ACCEPTED, offerer.player_id, **accepted)
            self._emit(events.OFFER_ACCEPTED, actor, **accepted)
            return outgoing

        return self._write(run)

    def cancel_offer(self, village_id: int, offer_id: int) -> TradeOffer:
        """Withdraw the village's open offer: goods back to stock (capped by storage),
        merchants free, state ``cancelled``. Returns the offer as it was made.

        Errors, in this order, nothing written: InvalidRequest (bad ids); NotFound /
        Forbidden for the village; NotFound (no such offer, or an offer of another village
        of the acting player's); Forbidden (another player's offer); Conflict (the offer is
        accepted or cancelled already).
        """
        action = "cancel a trade offer"
        actor = self._actor_id(action)

        def run(conn: Connection) -> TradeOffer:
            state = lock_village(conn, village_id, actor, self.now, action=action)
            offer = _lock_offer(conn, offer_id)
            if int(offer.village_id) != village_id:
                if int(offer.player_id) != actor:
                    raise Forbidden(f"offer {offer_id} is player {offer.player_id}'s, not yours "
                                    f"(player {actor}); {action} denied")
                raise NotFound(f"village {village_id} has no offer {offer_id} (it is "
                               f"village {offer.village_id}'s)")
            _check_open(offer)
            # The state changes first and only from open: a refund follows exactly one change.
            _close_offer(conn, offer_id, "cancelled")
            add_stock(conn, state, Resources(**{offer.offer_resource: int(offer.offer_amount)}))
            self._emit(events.OFFER_CANCELLED, state.player_id, village_id=village_id,
                       offer_id=offer_id)
            return _offer_from_row(offer)

        return self._write(run)


def busy_merchants(conn: Connection, state: VillageState) -> int:
    """Merchants of the village held by its open offers and out with its shipments.

    The caller holds the village's lock, so the count cannot change before it writes.
    """
    held_by_offers = (
        select(func.coalesce(func.sum(_o.c.merchants), 0))
        .where(_o.c.village_id == state.id, _o.c.state == "open")
        .scalar_subquery()
    )
    out_with_shipments = (
        select(func.coalesce(func.sum(_s.c.merchants), 0))
        .where(
            _s.c.from_village_id == state.id,
            _s.c.state.in_(BUSY_SHIPMENT_STATES),
            _s.c.returns_at > state.now,
        )
        .scalar_subquery()
    )
    return int(conn.execute(select(held_by_offers + out_with_shipments)).scalar_one())


def _reserve_merchants(conn: Connection, state: VillageState, amount: int) -> int:
    """How many merchants carrying ``amount`` takes, or the RuleViolation why not."""
    # Without a marketplace there is nothing to count: refused before the query.
    economy.check_marketplace(state.level("marketplace"), village_id=state.id)
    return economy.reserve_merchants(
        state.tribe,
        amount,
        marketplace_level=state.level("marketplace"),
        trade_office_level=state.level("trade_office"),
        busy=busy_merchants(conn, state),
        village_id=state.id,
    )


def _offer_village(conn: Connection, offer_id: int) -> int:
    """The village that made the offer (it never changes), or NotFound."""
    found = conn.execute(select(_o.c.village_id).where(_o.c.id == offer_id)).scalar()
    if found is None:
        raise NotFound(f"trade offer {offer_id} does not exist")
    return int(found)


def _lock_offer(conn: Connection, offer_id: int) -> Any:
    """Lock the offer's row, then read it (any state), or NotFound.

    Every write takes its village locks first and the offer's last, so the order is the
    same everywhere; the writes that change an offer hold its village's lock too.
    """
    if conn.execute(select(_o.c.id).where(_o.c.id == offer_id).with_for_update()).first() is None:
        raise NotFound(f"trade offer {offer_id} does not exist")
    return conn.execute(select(_o).where(_o.c.id == offer_id)).one()


def _close_offer(conn: Connection, offer_id: int, state: str) -> None:
    """Move an open offer to ``state``; Conflict (with the state it is in) unless exactly
    this write moved it."""
    closed = conn.execute(
        update(_o).where(_o.c.id == offer_id, _o.c.state == "open").values(state=state)
    ).rowcount
    if closed != 1:  # pragma: no cover - only if something bypassed the locks
        current = conn.execute(select(_o).where(_o.c.id == offer_id)).first()
        if current is None:
            raise NotFound(f"trade offer {offer_id} does not exist")
        _check_open(current)
        raise Conflict(f"trade offer {offer_id} changed while it was being {state}",
                       details={"offer_id": offer_id, "state": str(current.state)})


def _check_open(offer: Any) -> None:
    if offer.state != "open":
        raise Conflict(f"trade offer {offer.id} is {offer.state}, no longer open",
                       details={"offer_id": int(offer.id), "state": str(offer.state)})


def _offer_from_row(row: Any) -> TradeOffer:
    return TradeOffer(
        id=int(row.id),
        village_id=int(row.village_id),
        player_id=int(row.player_id),
        offer_resource=row.offer_resource,
        offer_amount=int(row.offer_amount),
        request_resource=row.request_resource,
        request_amount=int(row.request_amount),
        merchants=int(row.merchants),
        created_at=as_utc(row.created_at),
    )


def _dispatch(conn: Connection, settings: WorldSettings, source: VillageState,
              target: VillageState, goods: Resources, merchants: int) -> Shipment:
    """Insert a shipment from ``source`` to ``target`` leaving now (as ``send_resources``
    times it: the sender's merchant speed, back after the same time again)."""
    seconds = travel.travel_seconds(
        travel.distance(source.x, source.y, target.x, target.y, radius=settings.map_radius),
        economy.merchant_speed(source.tribe),
        server_speed=settings.speed,
        tournament_square_level=0,
    )
    departed = source.now
    arrives = departed + timedelta(seconds=seconds)
    shipment_id = conn.execute(
        insert(_s)
        .values(from_village_id=source.id, to_village_id=target.id, wood=goods.wood,
                clay=goods.clay, iron=goods.iron, wheat=goods.wheat, merchants=merchants,
                state="underway", departed_at=departed, arrives_at=arrives,
                returns_at=arrives + timedelta(seconds=seconds))
        .returning(_s.c.id)
    ).scalar_one()
    return Shipment(id=int(shipment_id), from_village_id=source.id, to_village_id=target.id,
                    resources=goods, merchants=merchants, departed_at=departed,
                    arrives_at=arrives)
