"""What the controller knows about its hosts: the index placement searches, the one ledger of
what placed tasks hold, fleets and volumes as applied, and which hosts are live."""
