#!/usr/bin/env python3
"""Runs the VM tests' Python against a stand-in of the NixOS test driver.

    nix-instantiate --store dummy:// --eval --strict --json vm-tests/stand-ins.nix \\
      | python3 vm-tests/check-steps.py

Each test's testScript (as ./stand-ins.nix generates it, with ./steps.py in it) runs with one
stand-in machine per node. The stand-in offers only methods of the driver's QemuMachine
(nixos/lib/test-driver/src/test_driver/machine/__init__.py), with their signatures, and keeps the
driver's rules for a machine's life, written from a reading of that file:

- start(allow_reboot=False) does nothing on a started machine; without allow_reboot QEMU runs
  with -no-reboot, so a reboot ends QEMU and the next command fails with "Shell disconnected";
- reboot() presses ctrl-alt-delete on the monitor (the machine must be started) and drops the
  shell connection; the next command waits for the new boot;
- crash() and shutdown() leave the machine down; the next command starts it again through
  start(), that is without allow_reboot;
- switch-to-configuration is the booted system's or one of its specialisations', run with
  `test` or `dry-activate`.

Commands are not run: every output compares equal to anything (the boot harness checks the
outputs). Exits 1 when a test script fails, naming the test and the error.
"""

import builtins
import contextlib
import json
import re
import sys
import traceback
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


class AnyOutput(str):
    """Output of a command that was not run: equal to, and containing, anything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __contains__(self, item):
        return True

    __hash__ = str.__hash__


class Machine:
    def __init__(self, name, specialisations):
        self.name = name
        self.specialisations = set(specialisations)
        self.booted = False
        self.connected = False
        self.qemu_running = False
        self.allow_reboot = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self, allow_reboot: bool = False) -> None:
        if self.booted:
            return
        self.booted = True
        self.qemu_running = True
        self.allow_reboot = allow_reboot

    def _connect(self):
        if self.connected:
            return
        self.start()
        if not self.qemu_running:
            raise RuntimeError("Shell disconnected")
        self.connected = True

    def send_monitor_command(self, command: str) -> str:
        if not self.booted:
            raise AssertionError(f"{self.name}: monitor command {command!r} on a machine that was never started")
        if not self.qemu_running:
            raise BrokenPipeError(f"{self.name}: QEMU has exited (started without allow_reboot, then rebooted)")
        return AnyOutput()

    def reboot(self) -> None:
        self.send_key("ctrl-alt-delete")
        self.connected = False
        if not self.allow_reboot:
            self.qemu_running = False

    def crash(self) -> None:
        if not self.booted:
            return
        self.send_monitor_command("quit")
        self.booted = self.connected = self.qemu_running = False

    def shutdown(self) -> None:
        if not self.booted:
            return
        if not self.qemu_running:
            raise RuntimeError("Shell disconnected")
        self.booted = self.connected = self.qemu_running = False

    def wait_for_shutdown(self) -> None:
        self.booted = self.connected = self.qemu_running = False

    # -- keyboard and screen -----------------------------------------------------------------

    def send_key(self, key: str, delay=0.01, log=True) -> None:
        self.send_monitor_command(f"sendkey {key}")

    def send_chars(self, chars: str, delay=0.01) -> None:
        for char in chars:
            self.send_key(char, delay, log=False)

    def get_tty_text(self, tty: str) -> str:
        return self.execute(f"cat /dev/vcs{tty}")[1]

    def wait_until_tty_matches(self, tty: str, regexp: str, timeout: int = 900) -> None:
        re.compile(regexp)
        self.get_tty_text(tty)

    # -- commands -----------------------------------------------------------------------------

    def execute(self, command: str, check_return: bool = True, check_output: bool = True, timeout=900):
        self._connect()
        switch = re.search(r"(\S*)/bin/switch-to-configuration (\S+)", command)
        if switch:
            toplevel, action = switch.groups()
            spec = re.fullmatch(r"/run/booted-system(?:/specialisation/([^/]+))?", toplevel)
            if not spec:
                raise AssertionError(f"{self.name}: switch-to-configuration of an unknown system {toplevel}")
            if spec.group(1) is not None and spec.group(1) not in self.specialisations:
                raise AssertionError(f"{self.name}: no specialisation {spec.group(1)!r} (has {sorted(self.specialisations)})")
            if action not in ("test", "dry-activate"):
                raise AssertionError(f"{self.name}: switch-to-configuration {action}: the tests switch with `test` (or look with `dry-activate`)")
        return (0, AnyOutput())

    def succeed(self, *commands: str, timeout=None) -> str:
        for command in commands:
            self.execute(command, timeout=timeout)
        return AnyOutput()

    def fail(self, *commands: str, timeout=None) -> str:
        for command in commands:
            self.execute(command, timeout=timeout)
        return AnyOutput()

    def wait_until_succeeds(self, command: str, timeout: int = 900) -> str:
        return self.execute(command, timeout=timeout)[1]

    def wait_until_fails(self, command: str, timeout: int = 900) -> str:
        return self.execute(command, timeout=timeout)[1]

    def wait_for_unit(self, unit: str, user=None, timeout: int = 900) -> None:
        self.execute(f"systemctl show {unit}")

    def wait_for_file(self, filename: str, timeout: int = 900) -> None:
        self.execute(f"test -e {filename}")

    def systemctl(self, q: str, user=None):
        return self.execute(f"systemctl {q}")

    def get_unit_info(self, unit: str, user=None) -> dict:
        self.execute(f"systemctl show {unit}")
        return {}

    def sleep(self, secs: int) -> None:
        self.succeed(f"sleep {secs}")

    def log(self, msg: str) -> None:
        pass


def scenario_file(path):
    match = re.search(r"-agenixd-scenario-(.+)\.json$", str(path))
    if not match:
        raise FileNotFoundError(path)
    return SCENARIOS / f"{match.group(1)}.json"


def run_test(name, test):
    machines = {node: Machine(node, spec["specialisations"]) for node, spec in test["nodes"].items()}

    @contextlib.contextmanager
    def subtest(_name):
        yield

    def fake_open(path, *args, **kwargs):
        return builtins.open(scenario_file(path), *args, **kwargs)

    namespace = {"__builtins__": builtins, "open": fake_open, "subtest": subtest, **machines}
    exec(compile(test["testScript"], f"<testScript of {name}>", "exec"), namespace)
    for machine in machines.values():
        if machine.booted:
            raise AssertionError(f"{machine.name} is still running at the end of the test")


def main():
    tests = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    failed = 0
    for name, test in sorted(tests.items()):
        try:
            run_test(name, test)
            print(f"ok {name} ({', '.join(sorted(test['nodes']))})")
        except Exception:
            failed += 1
            print(f"FAILED {name}:\n{traceback.format_exc()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
