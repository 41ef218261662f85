# Executes a scenario's steps (scenarios/<name>.json) with the NixOS test driver. The twin of
# ../harness/steps.ts: both must check the same things for each step. Only the driver's
# QemuMachine methods are used, with its signatures; ./check-steps.py runs this file against a
# stand-in of that driver that keeps its rules (see there).
import shlex


def _expect(what, actual, step):
    if "equals" in step and actual != step["equals"]:
        raise AssertionError(f"{what}: expected {step['equals']!r}, got {actual!r}")
    # One string, or several that must all be there.
    wanted = step.get("contains", [])
    for part in [wanted] if isinstance(wanted, str) else wanted:
        if part not in actual:
            raise AssertionError(f"{what}: expected output containing {part!r}, got:\n{actual}")


def _check_password(machine, user, password):
    # agenix's own integration test: log in on a virtual console with the password.
    machine.wait_until_succeeds("pgrep -f 'agetty.*tty1'")
    machine.send_key("alt-f2")
    machine.wait_until_succeeds("[ $(fgconsole) = 2 ]")
    machine.wait_for_unit("getty@tty2.service")
    machine.wait_until_succeeds("pgrep -f 'agetty.*tty2'")
    machine.wait_until_tty_matches("2", "login: ")
    machine.send_chars(f"{user}\n")
    machine.wait_until_tty_matches("2", f"login: {user}")
    machine.wait_until_succeeds("pgrep login")
    machine.sleep(2)
    machine.send_chars(f"{password}\n")
    machine.send_chars("whoami > /tmp/whoami\n")
    machine.wait_for_file("/tmp/whoami")
    assert user in machine.succeed("cat /tmp/whoami")
    machine.succeed("rm /tmp/whoami")
    machine.send_chars("exit\n")


def run_step(machine, step):
    op = step["op"]
    if op == "start":
        # Without allow_reboot the driver gives QEMU -no-reboot: QEMU exits at a reboot and the
        # next command fails with "Shell disconnected". A crash leaves the machine down, and the
        # next command would start it without allow_reboot: scenarios start again explicitly.
        machine.start(allow_reboot=True)
    elif op == "waitForUnit":
        machine.wait_for_unit(step["unit"])
    elif op == "succeed":
        _expect(step["command"], machine.succeed(step["command"]), step)
    elif op == "fail":
        machine.fail(step["command"])
    elif op == "waitUntilSucceeds":
        machine.wait_until_succeeds(step["command"])
    elif op == "assertSecret":
        p = shlex.quote(step["path"])
        if step.get("symlink") is True:
            machine.succeed(f"test -L {p}")
        elif step.get("symlink") is False:
            machine.succeed(f"test -f {p} && test ! -L {p}")
        else:
            machine.succeed(f"test -e {p}")
        _expect(f"content of {step['path']}", machine.succeed(f"cat -- {p}"), {"equals": step["content"]})
        expected = f"{step['mode']} {step['owner']} {step['group']} {step['uid']} {step['gid']}\n"
        _expect(
            f"mode and ownership of {step['path']}",
            machine.succeed(f"stat -L -c '%a %U %G %u %g' -- {p}"),
            {"equals": expected},
        )
    elif op == "switch":
        to = step["to"]
        # test, or dry-activate (nixos-rebuild dry-activate; agenixd's dry run with age.dryActivate)
        action = step.get("action", "test")
        toplevel = "/run/booted-system" if to == "base" else f"/run/booted-system/specialisation/{to}"
        status, out = machine.execute(f"{toplevel}/bin/switch-to-configuration {action} 2>&1")
        machine.log(out)
        if status != 0 and not step.get("mayFail", False):
            raise AssertionError(f"switching to {to} ({action}) failed (exit code {status})\n{out}")
        _expect(f"switch-to-configuration {action} of {to}", out, {k: v for k, v in step.items() if k == "contains"})
    elif op == "homeSwitch":
        # The home configuration <to> is the specialisation home-<to> (vm-tests/lib.nix): its
        # home-manager-<user>.service runs Home Manager's activation, sd-switch included.
        toplevel = f"/run/booted-system/specialisation/home-{step['to']}"
        status, out = machine.execute(f"{toplevel}/bin/switch-to-configuration test 2>&1")
        machine.log(out)
        if status != 0 and not step.get("mayFail", False):
            raise AssertionError(f"home-manager switch to {step['to']} failed (exit code {status})\n{out}")
    elif op == "reboot":
        machine.reboot()
    elif op == "crash":
        machine.crash()
    elif op == "shutdown":
        machine.shutdown()
    elif op == "repeat":
        for _ in range(step["times"]):
            run_steps(machine, step["steps"])
    elif op == "checkPassword":
        _check_password(machine, step["user"], step["password"])
    else:
        raise ValueError(f"unknown step {op!r}")


def run_steps(machine, steps):
    for step in steps:
        run_step(machine, step)
