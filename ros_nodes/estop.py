"""The e-stop rule of the action_node gate: engaged wins, whoever publishes.

Several devices may publish the latched /estop state (a panel, an operator's pendant, the
sim console). A gate that starts or is respawned receives each device's latched sample in
whatever order discovery matches them, and discovery is not atomic: one device's release
can arrive well before another device's engage is even known. Arrival order therefore
proves nothing, so the gate orders the messages by their DDS source timestamp (the
publisher's clock when it published) and opens only on a release that is provably newer
than every engage it has seen AND than its own start. A respawned gate thus never opens
on stale latched releases: it waits for someone to release again, as a machine's safety
controller waits for a deliberate reset after a restart.

Kept free of rclpy so the rule is testable without DDS.
"""

from __future__ import annotations

from dataclasses import dataclass

NEVER = -1


@dataclass
class EStopLatch:
    """Engaged until a release stamped after every engage and after `started_ns`.

    Stamps are nanoseconds on the publishers' clocks (DDS source timestamps), which must be
    synchronised with the gate's clock (one host, or chrony across hosts): a release from a
    clock running behind is refused, which keeps the robot stopped rather than moving.
    """

    started_ns: int
    last_engage_ns: int = NEVER
    last_release_ns: int = NEVER

    @property
    def engaged(self) -> bool:
        return self.last_release_ns <= max(self.last_engage_ns, self.started_ns)

    def update(self, engaged: bool, stamp_ns: int) -> str | None:
        """Record one /estop message; returns why a release did not open the gate, or None."""
        if engaged:
            self.last_engage_ns = max(self.last_engage_ns, stamp_ns)
            return None
        self.last_release_ns = max(self.last_release_ns, stamp_ns)
        if not self.engaged:
            return None
        if stamp_ns <= self.started_ns:
            return "release published before this gate started (stale latched state)"
        return "release is not newer than the latest engage"
