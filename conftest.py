"""Root conftest: every test folder gets the real-service fixtures from one place."""

pytest_plugins = [
    "klupa.testing.services",
    "klupa.testing.micropython",
    "klupa.testing.bootloader",
]
