from dstack_hybrid.shared.version import VERSION

AGENT_VERSION = VERSION  # what the agent reports in its host facts
