"""libs.runtime — what every service process shares besides the event kernel.

Typed settings, RFC 9457 problem details, JSON logging, tracing, Kafka clients, and
:class:`ServiceRuntime`, which wires the kernel's parts for one service and runs
them for the life of its FastAPI app. Like ``libs.events`` it imports no service.
"""
