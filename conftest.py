"""Root conftest: every test folder gets the real-service fixtures from one place."""

pytest_plugins = [
    "testkit.services",
    "testkit.micropython",
    "testkit.bootloader",
]
