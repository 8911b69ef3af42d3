"""Broker credentials and ACLs from the site models: ``kilnwatch collector broker-acl``.

Mosquitto is the only thing between a plant network and the ledger: without a login and an ACL, any
gateway (or anything on its network) could publish another plant's readings, read every plant's data, or
overwrite an agent's retained status. The site models already say which agents exist at which site, so the
broker's password file and ACL are derived from them rather than written by hand.
"""

#: The collector's login when neither ``--collector-user`` nor ``[mqtt] username`` names one.
DEFAULT_COLLECTOR_USER = "kilnwatch-collector"
