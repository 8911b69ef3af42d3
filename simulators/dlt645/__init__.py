"""A simulated DL/T 645-2007 meter line with ground truth: meters (``meter``), their framing (``wire``),
the line served on a TCP port or a pseudo-terminal (``line``); ``live`` runs ``kilnwatch sim dlt645``."""
