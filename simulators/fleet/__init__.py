"""A fleet of simulated agents for load tests: many sites, many agents, many channels, known totals.

``spec`` names the sites, agents and channels and gives each channel its deterministic values; ``models``
writes one site model per site; ``traffic`` yields the batches in publish order (with replayed duplicates
and an outage's late batches on demand); ``truth`` says what a correct collector must end up with;
``publish`` sends the traffic to a broker as the agents would. ``kilnwatch sim fleet`` (``command``) runs it.
"""

from simulators.fleet.models import site_models
from simulators.fleet.publish import PublishResult, publish
from simulators.fleet.spec import AgentSpec, ChannelSpec, FleetSpec
from simulators.fleet.traffic import Message, batches, messages
from simulators.fleet.truth import truth, write_truth

__all__ = [
    "AgentSpec",
    "ChannelSpec",
    "FleetSpec",
    "Message",
    "PublishResult",
    "batches",
    "messages",
    "publish",
    "site_models",
    "truth",
    "write_truth",
]
