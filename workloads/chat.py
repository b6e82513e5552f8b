"""Chat room: every message goes to every connection in the room, the sender included."""

from workloads.base import Workload


class Chat(Workload):
    name = "chat"
    delivery = "broadcast"


WORKLOAD = Chat
