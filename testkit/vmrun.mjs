// Run one firmware unit-test module inside the MicroPython WebAssembly VM.
//
// Reads a JSON config on stdin (written by testkit/vm.py):
//   {portModule, heapsize, copies: [[hostPath, vmDir], ...], module, marker, script}
// copies the host files/folders into the VM's in-memory file system, then awaits
// klupa_vmrun.run_module(module, marker) at the top level, so async tests run on the port's
// JavaScript-driven asyncio. The result is one line on stdout starting with the marker.
import fs from "node:fs";
import path from "node:path";

const config = JSON.parse(fs.readFileSync(0, "utf8"));
const { loadMicroPython } = await import(path.resolve(config.portModule));

const out = [];
const flush = () => {
  if (out.length) process.stdout.write(Buffer.from(out.splice(0)));
};
const mp = await loadMicroPython({
  heapsize: config.heapsize,
  stdout: (bytes) => {
    for (const b of bytes) out.push(b);
    if (out.length > 4096) flush();
  },
  linebuffer: false,
});
const FS = mp.FS;

function mkdirs(dir) {
  try {
    FS.mkdirTree(dir);
  } catch {
    // exists
  }
}

function copyIn(host, vmDir) {
  const st = fs.statSync(host);
  if (st.isDirectory()) {
    mkdirs(vmDir);
    for (const name of fs.readdirSync(host)) {
      if (name.startsWith(".") || name === "__pycache__" || name.endsWith(".pyc")) continue;
      const child = path.join(host, name);
      if (fs.statSync(child).isDirectory()) copyIn(child, path.posix.join(vmDir, name));
      else FS.writeFile(path.posix.join(vmDir, name), fs.readFileSync(child));
    }
  } else {
    mkdirs(vmDir);
    FS.writeFile(path.posix.join(vmDir, path.basename(host)), fs.readFileSync(host));
  }
}

for (const [host, vmDir] of config.copies) copyIn(host, vmDir);

const hostvfs = fs.readFileSync(new URL("./mp/hostvfs.py", import.meta.url), "utf8");
try {
  mp.runPython(`${hostvfs}
_mount_root('/')
import sys
sys.path[:] = ['/tests', '', '/lib', '.frozen']
del sys, vfs, _HostVfs, _mount_root
`);
  const name = JSON.stringify(config.module);
  // A script (config.script) is imported and its main() awaited, with nothing else loaded:
  // no runner, no unittest (what the heap benchmarks measure against).
  const run = config.script
    ? `import asyncio\nawait asyncio.create_task(__import__(${name}).main())\n`
    : `import asyncio, klupa_vmrun\nawait asyncio.create_task(klupa_vmrun.run_module(${name}, ${JSON.stringify(config.marker)}))\n`;
  await mp.runPythonAsync(run);
} catch (e) {
  flush();
  process.stderr.write(`${e.name === "PythonError" ? e.message : e.stack || e}\n`);
  process.exitCode = 1;
}
flush();
