"""The test harness: MicroPython VM runner, real-service fixtures, gateway test helpers (not shipped)."""
