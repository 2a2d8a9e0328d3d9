# mypy: ignore-errors
# (MicroPython code, run by benchmarks/vm_romfs.py in MicroPython's unix port, which has a
# real VfsRom; the npm WebAssembly port has none.)
#   micropython unix_main.py MODE ROOT SCRIPT
# ROOT holds app/ (the bundle as on a bench's file system), app.rom (the ROMFS image
# provisioning writes), boards/, flash/ (the bench's files) and harness/ (this folder's
# benchmark modules, without the binascii stand-in: this port's binascii is C). MODE "fs"
# imports the app from app/; MODE "rom" reads the image into one bytes object, standing in
# for memory-mapped flash, mounts it with vfs.VfsRom at /rom and imports from there, so
# bytecode and constants are used in place. Both happen before the script's baseline, so the
# image is not charged to the app. Then SCRIPT's main() runs as in the WebAssembly VM.
import asyncio
import sys

import vfs

mode, root, script = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "rom":
    with open(root + "/app.rom", "rb") as f:
        image = f.read()
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.insert(0, "/rom")
else:
    sys.path.insert(0, root + "/app")
sys.path.insert(0, root + "/harness")

import vmkit  # noqa: E402

vmkit.ROOT = root + "/flash"
vmkit.BOARD_FILE = root + "/boards/bench-v1.json"
asyncio.run(__import__(script).main())
