"""Domain event kinds. Every committed write records events; the event bus publishes them
to each player's channel and the cache invalidates from them.

``Event.data`` carries JSON-safe ids and ISO times, named in the comments below.
"""

from __future__ import annotations

BUILD_QUEUED = "build_queued"  # village_id, position, building, target_level, completes_at
BUILD_CANCELLED = "build_cancelled"  # village_id, position
BUILD_COMPLETED = "build_completed"  # village_id, building, level
TRAINING_QUEUED = "training_queued"  # village_id, order_id, next_at (the first unit's)
TROOPS_TRAINED = "troops_trained"  # village_id, unit, count
MOVEMENT_SENT = "movement_sent"  # movement_id, kind, from_village_id, to_village_id, arrives_at
ATTACK_INCOMING = "attack_incoming"  # same, to the target's owner (attacks, raids, sieges, scouts)
REINFORCEMENT_INCOMING = "reinforcement_incoming"  # same, to the target's owner
MOVEMENT_ARRIVED = "movement_arrived"  # movement_id, kind, from_village_id, to_village_id
OFFER_CREATED = "offer_created"  # village_id, offer_id
OFFER_ACCEPTED = "offer_accepted"  # offer_id, village_id (the offer's), accepted_by_village_id,
#   shipment_id (the accepter's), return_shipment_id (the offerer's); to both players
OFFER_CANCELLED = "offer_cancelled"  # village_id, offer_id
RESOURCES_SENT = "resources_sent"  # shipment_id, from_village_id, to_village_id, arrives_at
RESOURCES_INCOMING = "resources_incoming"  # same, to the target's owner
RESOURCES_ARRIVED = "resources_arrived"  # shipment_id, from_village_id, to_village_id
MESSAGE_RECEIVED = "message_received"  # message_id, from_player_id
MESSAGE_READ = "message_read"  # message_id, to the reader
REPORT_CREATED = "report_created"  # report_id, kind, village_id
REPORT_READ = "report_read"  # report_id (to the report's player, when it was unread)
ALLIANCE_CREATED = "alliance_created"  # alliance_id
ALLIANCE_INVITATION = "alliance_invitation"  # alliance_id, invitation_id, invited_by
# Never committed: the HTTP event stream's notice that the server's event log no longer held
# events after the reader's last one (it resumes with the oldest it has).
EVENTS_LOST = "events_lost"  # last_event_id, reason
