"""Task logs as the controller keeps them: the cap, the read pages, the time window. Pure parts only;
the store holds the lines (a later change puts several controllers on one PostgreSQL database, so
files on one controller's disk would not be shared)."""
