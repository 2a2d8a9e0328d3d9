"""The one thing pyproject.toml cannot say: the bench firmware ships in the wheel as the package
``klupa_firmware``, made of the checkout's ``firmware/`` folder, which keeps its name and place
(it is not a package of the host). ``klupa.shipped`` finds it wherever klupa is installed."""

from setuptools import find_namespace_packages, setup

HOST = ["klupa*", "edge_gateway*", "portal*", "provisioning*", "boards*"]
FIRMWARE = "klupa_firmware"

setup(
    packages=[
        *find_namespace_packages(include=HOST),
        FIRMWARE,
        *(f"{FIRMWARE}.{p}" for p in find_namespace_packages("firmware")),
    ],
    package_dir={FIRMWARE: "firmware"},
)
