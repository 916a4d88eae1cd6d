"""Proxy-wide counters: the `# Stats` section of INFO."""

import time


class Stats:
    __slots__ = ("accept", "client_connections", "total_requests", "total_responses",
                 "recv_client_bytes", "send_client_bytes", "errors", "ops_sample",
                 "auth_failures")

    def __init__(self):
        self.reset()

    def reset(self):
        self.accept = self.total_requests = self.total_responses = self.errors = self.auth_failures = 0
        self.recv_client_bytes = self.send_client_bytes = 0
        self.ops_sample = (time.time(), 0)   # (when, total_requests) at the last INFO stats
        self.client_connections = getattr(self, "client_connections", 0)
