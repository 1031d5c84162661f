#!/usr/bin/env python3
# bench/rbd_copy_qmp.py: the QMP side of bench/rbd_copy.sh (QEMU's blockdev-mirror into RBD).
#
#   rbd_copy_qmp.py QMP_SOCKET export NBD_SOCKET NODE    NBD export of NODE, writable
#   rbd_copy_qmp.py QMP_SOCKET mirror NODE CONF POOL IMAGE
#       add an rbd node for POOL/IMAGE, blockdev-mirror NODE into it (sync=full), wait for
#       BLOCK_JOB_READY; prints the seconds from the command to the event
#   rbd_copy_qmp.py QMP_SOCKET complete
#       stop, block-job-complete, wait for BLOCK_JOB_COMPLETED, cont (what libvirt and Proxmox
#       do to finish a live "move disk"); prints the milliseconds from stop to cont's answer
#   rbd_copy_qmp.py QMP_SOCKET quit
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb", buffering=0)
        self.events = []
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.f.readline()
        if not line:
            raise SystemExit("qmp: QEMU closed the connection")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise SystemExit("qmp: %s: %s" % (name, r["error"].get("desc")))
            return r.get("return")

    def wait_event(self, name, timeout=900):
        end = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    del self.events[i]
                    return e
                if e["event"] == "BLOCK_JOB_ERROR" or (
                        e["event"] == "BLOCK_JOB_COMPLETED" and e["data"].get("error")):
                    raise SystemExit("qmp: job failed: %s" % json.dumps(e))
            self.events.clear()
            if time.monotonic() > end:
                raise SystemExit("qmp: no %s within %d s" % (name, timeout))
            self.s.settimeout(max(0.1, end - time.monotonic()))
            r = self.read()
            self.s.settimeout(None)
            if "event" in r:
                self.events.append(r)


def main():
    q = QMP(sys.argv[1])
    what = sys.argv[2]
    if what == "export":
        q.cmd("nbd-server-start", addr={"type": "unix", "data": {"path": sys.argv[3]}})
        q.cmd("block-export-add", type="nbd", id="e0", **{"node-name": sys.argv[4]},
              writable=True)
    elif what == "mirror":
        node, conf, pool, image = sys.argv[3:7]
        q.cmd("blockdev-add", driver="rbd", **{"node-name": "rbd0"}, pool=pool, image=image,
              conf=conf)
        t0 = time.monotonic()
        q.cmd("blockdev-mirror", **{"job-id": "m"}, device=node, target="rbd0", sync="full")
        q.wait_event("BLOCK_JOB_READY")
        print("%.3f" % (time.monotonic() - t0))
    elif what == "complete":
        t0 = time.monotonic()
        q.cmd("stop")
        q.cmd("block-job-complete", device="m")
        q.wait_event("BLOCK_JOB_COMPLETED")
        q.cmd("cont")
        print("%.1f" % ((time.monotonic() - t0) * 1000))
    elif what == "quit":
        q.cmd("quit")


main()
