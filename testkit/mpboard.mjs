// A MicroPython "board" for mpremote: the npm WebAssembly port behind a byte stream.
//
//   node mpboard.mjs --fs DIR [--heapsize BYTES] [--run-main] [--rom DIR]
//
// Bytes from the host arrive on stdin, the board's output leaves on stdout (the Python side,
// testkit/micropython.py, bridges both to a pseudo-terminal). What this adds to the port:
//
// * The board's file system is the host folder DIR (HOSTFS, mounted at / of MicroPython's VFS),
//   so files survive soft resets and the host can inspect them.
// * Raw-paste requests (Ctrl-E A Ctrl-A) are answered "R\x00" (not supported): the port's own
//   raw-paste mode answers R\x01 and then hangs, while R\x00 makes mpremote fall back to the
//   plain raw REPL, which works.
// * A soft reset (Ctrl-D at the friendly prompt or on an empty raw REPL line, sys.exit(),
//   machine.soft_reset() of the fakes) ends the port's REPL; we then print "MPY: soft reboot",
//   start a fresh VM on the same folder, run boot.py (and main.py with --run-main, friendly
//   REPL only, as a board does) and return to the REPL mode the host was in.
// * With --rom DIR, a stand-in for a ROMFS build (mp/romvfs.py): `vfs.rom_ioctl` writes the
//   partition DIR/partition.bin, and a valid image there is mounted at /rom at every boot.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { mountHostDir } from "./hostfs.mjs";

function parseArgs(argv) {
  const opts = { fs: null, heapsize: 56 * 1024, runMain: false, port: null, rom: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--fs") opts.fs = argv[++i];
    else if (a === "--heapsize") opts.heapsize = parseInt(argv[++i], 10);
    else if (a === "--run-main") opts.runMain = true;
    else if (a === "--port-module") opts.port = argv[++i];
    else if (a === "--rom") opts.rom = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.fs) throw new Error("--fs DIR is required");
  return opts;
}

async function loadPort(modulePath) {
  if (modulePath) return import(path.resolve(modulePath));
  // Resolve the npm package from the repository root (node_modules next to package.json).
  const require = createRequire(import.meta.url);
  return import(require.resolve("@micropython/micropython-webassembly-pyscript"));
}

const opts = parseArgs(process.argv.slice(2));
const { loadMicroPython } = await loadPort(opts.port);

// Output is collected and written in batches: the port calls back once per byte.
let outBuf = [];
let flushScheduled = false;
let muted = false;
function emit(bytes) {
  if (muted) return;
  for (const b of bytes) outBuf.push(b);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}
function flush() {
  flushScheduled = false;
  if (outBuf.length) {
    const chunk = Buffer.from(outBuf);
    outBuf = [];
    process.stdout.write(chunk);
  }
}
const text = (s) => emit(Buffer.from(s, "latin1"));
process.stdout.on("error", () => process.exit(0));

// MicroPython's "/" becomes the host folder mounted at /flash of the Emscripten FS, through
// mp/hostvfs.py (which gives OSErrors a board's errno numbers).
const HOSTVFS = fs.readFileSync(new URL("./mp/hostvfs.py", import.meta.url), "utf8");
const SETUP = `${HOSTVFS}
_mount_root('/flash')
import sys
sys.path[:] = ['', '.frozen', '/lib']
del sys, vfs, _HostVfs, _mount_root
`;
const ROMVFS = fs.readFileSync(new URL("./mp/romvfs.py", import.meta.url), "utf8");
const ROM_SETUP = `${ROMVFS}
_install_rom('/romdev')
`;

let vm = null;
let mode = "friendly"; // the REPL mode the host put the board in: survives soft resets

function runFile(name) {
  const p = path.join(opts.fs, name);
  if (!fs.existsSync(p)) return;
  try {
    vm.runPython(fs.readFileSync(p, "utf8"));
  } catch (e) {
    if (e.name !== "PythonError") throw e;
    if (e.type !== "SystemExit") text(e.message.replace(/\r?\n/g, "\r\n"));
  }
}

async function boot() {
  vm = await loadMicroPython({ heapsize: opts.heapsize, stdout: emit, linebuffer: false });
  mountHostDir(vm.FS, opts.fs, "/flash");
  vm.runPython(SETUP);
  if (opts.rom) {
    mountHostDir(vm.FS, opts.rom, "/romdev");
    vm.runPython(ROM_SETUP);
  }
  runFile("boot.py");
  if (opts.runMain && mode === "friendly") runFile("main.py");
  muted = mode === "raw";
  vm.replInit(); // prints the banner and the friendly prompt
  muted = false;
  if (mode === "raw") await vm.replProcessCharWithAsyncify(0x01);
}

const queue = [];
let pumping = false;
let held = []; // a possible raw-paste request: 0x05 'A' 0x01

async function feed(c) {
  if (c === 0x01) mode = "raw";
  else if (c === 0x02) mode = "friendly";
  const result = await vm.replProcessCharWithAsyncify(c);
  if (result) {
    text("MPY: soft reboot\r\n");
    await boot();
  }
}

async function pump() {
  if (pumping) return;
  pumping = true;
  try {
    while (queue.length) {
      const c = queue.shift();
      if (mode === "raw" && (held.length > 0 || c === 0x05)) {
        held.push(c);
        const want = [0x05, 0x41, 0x01];
        if (held.every((b, i) => b === want[i])) {
          if (held.length === 3) {
            held = [];
            text("R\x00"); // raw-paste not supported: mpremote uses the plain raw REPL
          }
          continue;
        }
        const pending = held;
        held = [];
        for (const b of pending) await feed(b);
        continue;
      }
      await feed(c);
    }
  } finally {
    pumping = false;
  }
}

await boot();
const trace = process.env.MPBOARD_TRACE === "1";
process.stdin.on("data", (data) => {
  if (trace) process.stderr.write(`in: ${JSON.stringify(data.toString("latin1"))}\n`);
  for (const b of data) queue.push(b);
  pump().catch((e) => {
    process.stderr.write(`mpboard: ${e.stack || e}\n`);
    process.exit(1);
  });
});
process.stdin.on("end", () => {
  flush();
  process.exit(0);
});
