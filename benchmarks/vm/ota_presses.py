# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_ui.py through
# testkit.vm.run_script: main() awaited with no runner or unittest loaded; the host
# script documents what is and is not included.)
# Vote presses with and without an OTA download running, and the manifest's signature check
# (otapress.py), measured by vmkit.measure. Prints one line "@@vm-ota {json}".
import vmkit


async def main():
    await vmkit.measure(
        "otapress",
        "@@vm-ota ",
        (("core", vmkit.CORE_MODULES), ("code", vmkit.FRONT_MODULES)),
    )
