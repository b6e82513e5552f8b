"""Echo: each message comes back once, on the connection that sent it."""

from workloads.base import Workload


class Echo(Workload):
    name = "echo"
    delivery = "echo"


WORKLOAD = Echo
