"""Sources: one sub-package per protocol, each turning a device's registers or nodes into readings."""
