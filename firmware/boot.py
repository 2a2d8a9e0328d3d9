# Runs first at every reset, before main.py. Kept minimal: a failure here would stop the bench
# before its watchdog and safe mode exist.
import gc

gc.collect()
