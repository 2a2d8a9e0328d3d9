# mypy: ignore-errors
# (MicroPython code, run inside the VM by benchmarks/vm_ui.py through
# testkit.vm.run_script: main() awaited with no runner or unittest loaded; the host
# script documents what is and is not included.)
# 1,000 vote presses (pressrun.py), measured by vmkit.measure: baseline, the core modules and
# then the front's imported, the harness imported and subtracted, then the presses. Prints one
# line "@@vm-ui {json}".
import vmkit


async def main():
    await vmkit.measure(
        "pressrun",
        "@@vm-ui ",
        (("core", vmkit.CORE_MODULES), ("code", vmkit.FRONT_MODULES)),
        1000,  # pressrun.PRESSES
    )
