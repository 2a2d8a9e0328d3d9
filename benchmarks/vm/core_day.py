# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_core.py through
# testkit.vm.run_script: main() awaited with no runner or unittest loaded; the host
# script documents what is and is not included.)
# The core's heap over a simulated day (dayrun.py), measured by vmkit.measure: baseline, the
# core modules imported, the harness imported and subtracted, then the day. Prints one line
# "@@vm-core {json}".
import vmkit


async def main():
    await vmkit.measure("dayrun", "@@vm-core ", (("core", vmkit.CORE_MODULES),), 24)  # dayrun.HOURS
